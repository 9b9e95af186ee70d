variable "subscription_id" {
  type        = string
  description = "The subscription of the Function Apps."
}

variable "resource_group_name" {
  type        = string
  description = "An existing resource group for both regions' resources."
}

variable "cosmosdb_account_id" {
  type        = string
  description = "Resource id of the existing Cosmos DB account."
}

variable "key_vault_id" {
  type        = string
  description = "Resource id of the existing Key Vault with the secrets kafka-password-westeurope and kafka-password-eastus."
}

variable "action_group_id" {
  type        = string
  description = "Resource id of the existing action group for the alerts."
}

variable "operator_principal_ids" {
  type        = map(string)
  description = "Who runs `check` and `replay`: a name => an Entra object id (user, group or service principal)."
  default     = {}
}
