from celery import shared_task


@shared_task(name="live.tasks.prune_changes", ignore_result=True)
def prune_changes() -> int:
    from live.feed import changes_prune

    return changes_prune()
