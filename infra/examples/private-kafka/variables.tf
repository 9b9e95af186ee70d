variable "subscription_id" {
  type        = string
  description = "The subscription of the Function Apps."
}

variable "resource_group_name" {
  type        = string
  description = "An existing resource group for every region's resources."
}

variable "cosmosdb_account_id" {
  type        = string
  description = "Resource id of the existing Cosmos DB account."
}

variable "action_group_id" {
  type        = string
  description = "Resource id of the existing action group for the alerts."
}

variable "log_analytics_workspace_id" {
  type        = string
  description = "Resource id of the existing Log Analytics workspace for every region."
}

variable "regions" {
  type = map(object({
    kafka_hosts = string
    subnet_id   = string
  }))
  description = "Per region (the key is the Azure region and the cluster id): its private Kafka and its integration subnet."
}
