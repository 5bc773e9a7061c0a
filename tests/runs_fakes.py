"""A fake Label Studio client for prediction-run tests: the `task_page` / `import_predictions`
contract of `functions.label_studio.LabelStudioClient`, in memory, with injectable faults."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from functions.label_studio import LabelStudioRefused, LabelStudioUnreachable


@dataclass
class Page:
    total: int
    tasks: list[dict[str, Any]]


@dataclass
class FakeLabelStudio:
    """Projects' tasks and the predictions imported into them (by task id)."""

    tasks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    predictions: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    unreachable: int = 0          # the next N calls raise LabelStudioUnreachable
    refuse: str | None = None     # every call raises LabelStudioRefused(refuse)
    unreachable_imports: int = 0  # the next N imports raise LabelStudioUnreachable
    drop_items: int = 0           # the next import creates this many fewer predictions than sent
    imports: int = 0
    pages: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, settings: Any = None) -> "FakeLabelStudio":
        return self

    def _fault(self) -> None:
        with self.lock:
            if self.refuse:
                raise LabelStudioRefused(self.refuse)
            if self.unreachable > 0:
                self.unreachable -= 1
                raise LabelStudioUnreachable("Label Studio at http://ls answered 500 to POST (after 5 attempts)")

    def task_page(self, project: str, page: int, page_size: int) -> Page:
        self._fault()
        with self.lock:
            self.pages += 1
            tasks = self.tasks.get(str(project), [])
            window = tasks[(page - 1) * page_size : page * page_size]
            return Page(len(tasks), [
                {"id": t["id"], "data": t["data"],
                 "prediction_versions": [p["model_version"] for p in self.predictions.get(t["id"], [])]}
                for t in window
            ])

    def import_predictions(self, project: str, items: list[dict[str, Any]]) -> int:
        self._fault()
        with self.lock:
            if self.unreachable_imports > 0:
                self.unreachable_imports -= 1
                raise LabelStudioUnreachable("Label Studio at http://ls answered 429 to POST (after 5 attempts)")
            self.imports += 1
            known = {t["id"] for t in self.tasks.get(str(project), [])}
            if any(item["task"] not in known for item in items):
                raise LabelStudioRefused(f"Label Studio at http://ls answered 400 to POST /api/projects/{project}/import/predictions")
            drop, self.drop_items = self.drop_items, 0
            kept = items[drop:]
            for item in kept:
                self.predictions.setdefault(item["task"], []).append(item)
            return len(kept)

    def close(self) -> None:
        pass

    def count(self, version: str) -> dict[int, int]:
        """Predictions of `version` per task id."""
        return {task: sum(p["model_version"] == version for p in preds) for task, preds in self.predictions.items()}
