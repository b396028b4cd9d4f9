"""The local stack: template.yaml's resources on DynamoDB Local and moto, the API, pollers, schedules, the sandbox."""
