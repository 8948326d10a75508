variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "merge-assist"
}

variable "vpc_id" {
  description = "VPC the cluster, database and cache live in."
  type        = string
}

variable "private_subnet_ids" {
  description = "At least two private subnets in different availability zones."
  type        = list(string)
}

variable "api_allowed_cidrs" {
  description = "Networks allowed to reach the EKS API (the public endpoint is off; this is for the private one)."
  type        = list(string)
}

variable "kubernetes_version" {
  description = "EKS control plane version."
  type        = string
  default     = "1.31"
}

variable "node_instance_type" {
  description = "Worker node instance type."
  type        = string
  default     = "t3.large"
}

variable "node_count" {
  description = "Desired, minimum and maximum node counts."
  type        = object({ desired = number, min = number, max = number })
  default     = { desired = 2, min = 2, max = 4 }
}

variable "db_instance_class" {
  description = "RDS instance class for PostgreSQL."
  type        = string
  default     = "db.t4g.medium"
}

variable "cache_node_type" {
  description = "ElastiCache node type for Redis."
  type        = string
  default     = "cache.t4g.small"
}

variable "backup_retention_days" {
  description = "Days of automated PostgreSQL backups (point-in-time recovery window)."
  type        = number
  default     = 14
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
