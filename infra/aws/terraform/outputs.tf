output "table_name" {
  description = "The event table."
  value       = aws_dynamodb_table.events.name
}

output "table_arn" {
  description = "The event table's ARN."
  value       = aws_dynamodb_table.events.arn
}

output "stream_arn" {
  description = "The table's DynamoDB stream (the change feed reads it)."
  value       = aws_dynamodb_table.events.stream_arn
}

output "bucket_name" {
  description = "The snapshot bucket."
  value       = aws_s3_bucket.snapshots.bucket
}

output "policy_arn" {
  description = "The managed policy to attach to the application's role."
  value       = aws_iam_policy.access.arn
}

output "store_url" {
  description = "The store URL for the sekiban CLI (--store) and DynamoDbTable::open."
  # The region is the table ARN's fourth field (arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME).
  value = "dynamodb://${aws_dynamodb_table.events.name}?region=${split(":", aws_dynamodb_table.events.arn)[3]}&bucket=${aws_s3_bucket.snapshots.bucket}"
}
