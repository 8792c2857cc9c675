"""What starts runs besides a person: cron schedules, signals, data arrival, backfills; run
strategies for overlapping runs; alerts. :class:`kaon.triggers.service.TriggerService` is the
loop the server runs."""
