output "cluster_name" {
  description = "EKS cluster to deploy deploy/kubernetes into."
  value       = aws_eks_cluster.main.name
}

output "database_endpoint" {
  description = "host:port of PostgreSQL; the password is in the Secrets Manager secret below."
  value       = aws_db_instance.main.endpoint
}

output "database_password_secret_arn" {
  description = "Secrets Manager secret holding the RDS master password (managed by RDS)."
  value       = aws_db_instance.main.master_user_secret[0].secret_arn
}

output "redis_url" {
  description = "MERGE_ASSIST_REDIS_URL (TLS, with the auth token): store it in the Secret `merge-assist` as redis_url."
  value       = "rediss://:${random_password.redis.result}@${aws_elasticache_replication_group.main.primary_endpoint_address}:6379/0"
  sensitive   = true
}
