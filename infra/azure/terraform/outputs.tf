locals {
  # https://ACCOUNT.documents.azure.com:443/ -> ACCOUNT.documents.azure.com
  cosmos_host = regex("^https://([^:/]+)", azurerm_cosmosdb_account.this.endpoint)[0]
}

output "cosmos_endpoint" {
  description = "The Cosmos DB account endpoint."
  value       = azurerm_cosmosdb_account.this.endpoint
}

output "database_name" {
  description = "The database."
  value       = azurerm_cosmosdb_sql_database.this.name
}

output "container_name" {
  description = "The events container."
  value       = azurerm_cosmosdb_sql_container.events.name
}

output "checkpoints_container_name" {
  description = "The checkpoints container."
  value       = azurerm_cosmosdb_sql_container.checkpoints.name
}

output "storage_account_name" {
  description = "The storage account of the snapshot blobs."
  value       = azurerm_storage_account.this.name
}

output "blob_container_name" {
  description = "The blob container of the snapshot blobs."
  value       = azurerm_storage_container.snapshots.name
}

output "store_url" {
  description = "The store URL sekiban takes (--store), for an application running as the managed identity granted above."
  value       = "cosmos://${local.cosmos_host}/${urlencode(var.database_name)}/${urlencode(var.container_name)}?credential=managed&blob_account=${urlencode(azurerm_storage_account.this.name)}&blob_container=${urlencode(azurerm_storage_container.snapshots.name)}"
}
