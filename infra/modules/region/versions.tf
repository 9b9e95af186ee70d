terraform {
  required_version = ">= 1.5.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 5.2.0, < 6.0.0"
    }
    azapi = {
      source  = "Azure/azapi"
      version = ">= 1.15.0, < 2.0.0"
    }
  }
}
