terraform {
  required_version = ">= 1.3"

  required_providers {
    azurerm = {
      source = "hashicorp/azurerm"
      # 4.9 added azurerm_storage_container.storage_account_id (the container through Azure
      # Resource Manager); 5.0 renames local_authentication_disabled to local_authentication_enabled.
      version = ">= 4.9, < 5.0"
    }
  }
}
