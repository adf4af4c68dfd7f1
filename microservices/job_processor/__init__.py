"""Job processor: imputation jobs: protocol adapters, status history, templates, batches, schedules."""
