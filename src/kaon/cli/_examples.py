"""One example per command, shown at the end of its ``--help`` (and in the docs' CLI
reference). Kept in one table, applied when the app is assembled."""

from __future__ import annotations

import typer

EXAMPLES: dict[str, str] = {
    "run": "kaon run flows/train.py:train -p epochs=3 --json",
    "resume": "kaon resume 20261202-0931-ab12",
    "watch": "kaon watch 20261202-0931-ab12 --logs",
    "continue": "kaon continue 20261202-0931-ab12 --step train -p lr=0.01",
    "paused": "kaon paused 20261202-0931-ab12 --json",
    "restart": "kaon restart 20261202-0931-ab12 --from train",
    "skip": "kaon skip 20261202-0931-ab12 fetch --output '[1, 2, 3]'",
    "kill": "kaon kill 20261202-0931-ab12 --step segments[3].train",
    "runs": "kaon runs --workflow train --status failed -n 5",
    "runs delete": "kaon runs delete 20261202-0931-ab12 20261202-1040-cd34 --yes",
    "show": "kaon show 20261202 --status failed --page 2",
    "logs": "kaon logs 20261202 segments[3].train --attempt 2",
    "validate": "kaon validate flows/recsys.yaml --json",
    "artifacts": "kaon artifacts 20261202",
    "lineage": "kaon lineage 9f2c41 --depth 2",
    "get": "kaon get 20261202 prepare --name segments -o segments.parquet",
    "explain": "kaon explain 20261202 train",
    "compare": "kaon compare 20261202-0931 20261202-1040",
    "plot": "kaon plot RUN1 RUN2 --metric rmse --by item -o rmse.png",
    "gc": "kaon gc --runs-older-than 90d --keep-last 10 --dry-run",
    "server": "kaon server --db postgresql+psycopg://kaon@db/kaon --port 8420",
    "push": "kaon push flows/train.py --group ml",
    "versions": "kaon versions train",
    "activate": "kaon activate train 3",
    "deactivate": "kaon deactivate train",
    "signal": "kaon signal data_ready day=2024-01-01",
    "backfill": "kaon backfill daily --start 2024-01-01 --end 2024-01-31 -c 4",
    "backfills": "kaon backfills --workflow daily",
    "backfill-cancel": "kaon backfill-cancel bf-1a2b3c",
    "triggers": "kaon triggers --workflow daily",
    "firings": "kaon firings --workflow daily --status dropped",
    "unblock": "kaon unblock daily",
    "schema": "kaon schema run-detail",
    "cache list": "kaon cache list --workflow train -n 20",
    "cache clear": "kaon cache clear --workflow train --step fit",
    "workflow show": "kaon workflow show train",
    "workflow set": "kaon workflow set train run_strategy=sequential concurrency=2",
    "token create": "kaon token create ci --role operator --group ml --expires-in 30d",
    "token list": "kaon token list --json",
    "token revoke": "kaon token revoke tok-1a2b3c",
    "token rotate": "kaon token rotate tok-1a2b3c --expires-in 7d",
    "audit": "kaon audit --token-id tok-1a2b3c -n 20",
    "config show": "kaon --profile prod config show",
    "pool set": "kaon pool set gpu --slots 4 --gpus 4 --memory 64Gi",
    "pool list": "kaon pool list --json",
    "pool delete": "kaon pool delete gpu",
    "permit set": "kaon permit set warehouse-db --max 2",
    "permit list": "kaon permit list",
    "permit delete": "kaon permit delete warehouse-db",
}


def _name(info: typer.models.CommandInfo) -> str:
    return info.name or typer.main.get_command_name(getattr(info.callback, "__name__", ""))


def add_examples(app: typer.Typer) -> None:
    """Set each registered command's help epilog to its example, when it has one."""
    for info in app.registered_commands:
        _set(info, _name(info))
    for group in app.registered_groups:
        if group.typer_instance is None:
            continue
        for info in group.typer_instance.registered_commands:
            _set(info, f"{group.name} {_name(info)}")


def _set(info: typer.models.CommandInfo, path: str) -> None:
    example = EXAMPLES.get(path)
    if example and not info.epilog:
        info.epilog = f"Example: {example}"
