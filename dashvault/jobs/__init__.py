"""Background and periodic jobs (huey): the queue, and running its consumer."""
