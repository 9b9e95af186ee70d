# Terraform 1.5 features at most, so that OpenTofu runs this too.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    azurerm = {
      source = "hashicorp/azurerm"
      # Validated here against the provider's main of 2026-08-24 (after 5.2.0). It plans
      # everything but the Function App itself, which is azapi's (modules/region/main.tf).
      version = ">= 5.2.0, < 6.0.0"
    }
    azapi = {
      source = "Azure/azapi"
      # Each region's Function App as the request Azure gets; validated here against
      # v1.15.0, whose embedded schema has Microsoft.Web/sites@2023-12-01.
      version = ">= 1.15.0, < 2.0.0"
    }
  }
}
