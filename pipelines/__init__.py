"""The Dagster code location: definitions, resources, jobs, sensors, schedules."""
