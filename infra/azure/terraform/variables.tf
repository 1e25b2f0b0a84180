variable "resource_group_name" {
  description = "Resource group of both accounts (it must exist)."
  type        = string
}

variable "account_name" {
  description = "Name of the Cosmos DB account (globally unique: 3-44 lowercase letters, digits and hyphens)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,42}[a-z0-9]$", var.account_name))
    error_message = "account_name: 3-44 lowercase letters, digits and hyphens."
  }
}

variable "location" {
  description = "Region of both accounts; null: the resource group's."
  type        = string
  default     = null
}

variable "database_name" {
  description = "Cosmos DB database."
  type        = string
  default     = "sekiban"
}

variable "container_name" {
  description = "Events container; the checkpoints container is named after it: <container_name>-checkpoints."
  type        = string
  default     = "events"
}

variable "capacity_mode" {
  description = "serverless: billed per request unit and GB stored, nothing for idle time. provisioned: autoscale throughput on the database, billed hourly."
  type        = string
  default     = "serverless"

  validation {
    condition     = contains(["serverless", "provisioned"], var.capacity_mode)
    error_message = "capacity_mode: serverless or provisioned."
  }
}

variable "enable_free_tier" {
  description = "Cosmos DB free tier (1000 RU/s and 25 GB free; one account per subscription). Only with provisioned capacity."
  type        = bool
  default     = false
}

variable "autoscale_max_throughput" {
  description = "Provisioned only: the autoscale maximum of the database's shared throughput (RU/s, a multiple of 1000); it scales between 10% of this and this."
  type        = number
  default     = 1000

  validation {
    condition     = contains(range(1000, 1000001, 1000), var.autoscale_max_throughput)
    error_message = "autoscale_max_throughput: a multiple of 1000 from 1000 to 1000000."
  }
}

variable "storage_account_name" {
  description = "Storage account for snapshot blobs (globally unique: 3-24 lowercase letters and digits)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.storage_account_name))
    error_message = "storage_account_name: 3-24 lowercase letters and digits."
  }
}

variable "blob_container_name" {
  description = "Blob container for snapshots too large to store inline."
  type        = string
  default     = "snapshots"
}

variable "principal_id" {
  description = "Object (principal) id of the application's identity to grant the data-plane roles to; empty: no role assignments."
  type        = string
  default     = ""
}

variable "principal_type" {
  description = "What principal_id is (the Azure RBAC role assignment records it; Cosmos DB's does not need it)."
  type        = string
  default     = "ServicePrincipal"

  validation {
    condition     = contains(["ServicePrincipal", "User", "Group"], var.principal_type)
    error_message = "principal_type: ServicePrincipal, User or Group."
  }
}

variable "disable_local_auth" {
  description = "Turn account keys off: Entra ID only (sekiban URLs: credential=managed, workload or cli)."
  type        = bool
  default     = true
}

variable "allow_shared_key_access" {
  description = "Allow shared-key (and account SAS) access to the storage account. Off: Entra ID only, as blob_key_env= needs a key."
  type        = bool
  default     = false
}

variable "public_network_access" {
  description = "Public network access to both accounts: Enabled or Disabled (Disabled needs private endpoints, which this module does not create)."
  type        = string
  default     = "Enabled"

  validation {
    condition     = contains(["Enabled", "Disabled"], var.public_network_access)
    error_message = "public_network_access: Enabled or Disabled."
  }
}

variable "tags" {
  description = "Tags for every resource that takes them."
  type        = map(string)
  default     = {}
}
