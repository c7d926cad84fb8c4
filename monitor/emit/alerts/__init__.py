"""Alert sinks: deliver decision transitions to PagerDuty, Alertmanager, webhooks and logs."""
