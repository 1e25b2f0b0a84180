# sekiban-rs event store on AWS: the DynamoDB table the sekiban-dynamodb backend expects (pk S /
# sk N, stream of NEW_IMAGE), an S3 bucket for large snapshot blobs, and a least-privilege
# managed policy for the application. The same resources as ../cloudformation/sekiban.yaml.

# (Functions instead of operators: see variables.tf.)
locals {
  tags             = merge({ app = "sekiban" }, var.tags)
  provisioned      = contains(["PROVISIONED"], var.billing_mode)
  generated_bucket = contains([""], var.bucket_name)
}

# The one table of a deployment. Events, stream heads, snapshot pointers, tombstones AND the
# change feed's checkpoints all live here (checkpoints are items with "~..." keys), so there is
# no separate checkpoint table, and no secondary index. Must match sekiban_dynamodb::TABLE
# (backend-dynamodb/src/table.rs): `DynamoDbTable::open` refuses a table whose key schema or
# stream differs.
resource "aws_dynamodb_table" "events" {
  name           = var.table_name
  billing_mode   = var.billing_mode
  read_capacity  = local.provisioned ? var.read_capacity : null
  write_capacity = local.provisioned ? var.write_capacity : null
  hash_key       = "pk"
  range_key      = "sk"

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "N"
  }

  # The change feed reads new images; the head item's image orders each stream.
  stream_enabled   = true
  stream_view_type = "NEW_IMAGE"

  point_in_time_recovery {
    enabled = true
  }

  # Encrypted at rest with the AWS managed key (aws/dynamodb).
  server_side_encryption {
    enabled = true
  }

  deletion_protection_enabled = true

  # Deliberately no `ttl` block: an expired event would leave a gap in its stream's versions,
  # and an expired head would let an append at version 0 win again.

  tags = local.tags

  lifecycle {
    prevent_destroy = true
  }
}

# Large snapshot states (above the inline limit) as blobs; the table's snapshot pointer
# references them. No versioning: a hard delete (crypto-shredding, GDPR erasure) must really
# erase the blob, and noncurrent versions would keep it. force_destroy stays false, so a
# bucket holding blobs is never removed by terraform.
resource "aws_s3_bucket" "snapshots" {
  bucket        = local.generated_bucket ? null : var.bucket_name
  bucket_prefix = local.generated_bucket ? "sekiban-snapshots-" : null
  force_destroy = false
  tags          = local.tags
}

resource "aws_s3_bucket_server_side_encryption_configuration" "snapshots" {
  bucket = aws_s3_bucket.snapshots.id

  # SSE-KMS with the AWS managed key aws/s3 (its key policy lets every principal of the account
  # use it through S3, so the access policy needs no kms: action) and an S3 Bucket Key, which
  # keeps the KMS requests (and their charge) to a few per hour.
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "snapshots" {
  bucket                  = aws_s3_bucket.snapshots.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "snapshots" {
  bucket = aws_s3_bucket.snapshots.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# Only the cleanup of abandoned multipart uploads. Never an age-based expiration: a live
# snapshot pointer may reference a blob of any age.
resource "aws_s3_bucket_lifecycle_configuration" "snapshots" {
  bucket = aws_s3_bucket.snapshots.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# TLS only (and TLS 1.2 or newer), for every principal.
data "aws_iam_policy_document" "tls_only" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.snapshots.arn, "${aws_s3_bucket.snapshots.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyOutdatedTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.snapshots.arn, "${aws_s3_bucket.snapshots.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "snapshots" {
  bucket = aws_s3_bucket.snapshots.id
  policy = data.aws_iam_policy_document.tls_only.json

  # S3 refuses concurrent changes to a bucket's policy and its public access block.
  depends_on = [aws_s3_bucket_public_access_block.snapshots]
}

# What the application (sekiban-dynamodb, the CLI, the conformance suite) needs, and nothing
# more: attach it to the application's role. It creates nothing: terraform does.
data "aws_iam_policy_document" "access" {
  # TransactWriteItems has no IAM action of its own: each item in it is authorized by PutItem,
  # UpdateItem or ConditionCheckItem (appends: Update of the head + Put of the events item;
  # snapshot saves: ConditionCheck of the head + Put of the pointer).
  statement {
    sid    = "EventTable"
    effect = "Allow"
    actions = [
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:BatchGetItem",
      "dynamodb:Query",
      "dynamodb:Scan",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:ConditionCheckItem",
    ]
    resources = [aws_dynamodb_table.events.arn]
  }

  # Read-only table settings, only for `sekiban doctor` (its TTL and point-in-time recovery
  # checks; without them it warns that it could not check). Drop this statement for the strict
  # minimum the store itself calls.
  statement {
    sid    = "Doctor"
    effect = "Allow"
    actions = [
      "dynamodb:DescribeTimeToLive",
      "dynamodb:DescribeContinuousBackups",
    ]
    resources = [aws_dynamodb_table.events.arn]
  }

  statement {
    sid    = "ChangeFeed"
    effect = "Allow"
    actions = [
      "dynamodb:DescribeStream",
      "dynamodb:GetShardIterator",
      "dynamodb:GetRecords",
    ]
    resources = ["${aws_dynamodb_table.events.arn}/stream/*"]
  }

  statement {
    sid       = "SnapshotBucket"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.snapshots.arn]
  }

  statement {
    sid    = "SnapshotBlobs"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
    ]
    resources = ["${aws_s3_bucket.snapshots.arn}/*"]
  }
}

resource "aws_iam_policy" "access" {
  name_prefix = "sekiban-${substr(var.table_name, 0, 64)}-"
  description = "sekiban-rs event store: read and write table ${var.table_name}, its stream and its snapshot bucket"
  policy      = data.aws_iam_policy_document.access.json
  tags        = local.tags
}
