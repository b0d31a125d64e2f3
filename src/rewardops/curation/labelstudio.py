"""People in the loop through a real Label Studio server (stage 1's human verification).

`LabelStudioAnnotator` is an `Annotator` (see protocols.py) that, for each batch of pairs stage 1
routes to people (one batch per iteration, named from the pairs' lineage: "iter-01", ...; the
gold seed gets a content-hash name):

1. creates (or reuses) one Label Studio project per batch, its description marked with this run's
   id and the batch, with the labeling interface of `human.LABEL_CONFIG` (guideline, attributes,
   conversation, responses A/B in a per-pair random order, a choice A / B / cannot decide);
2. imports one task per pair not yet in the project (a pair people already decided in another
   batch of the same run is answered from that decision, not asked again);
3. collects the annotations (Label Studio's JSON export) into a ledger on disk,
   `<ledger folder>/<batch>.ledger.json`, written atomically; the folder is `<output>.labelstudio/`
   beside the step's output (or `options(ledger=...)`). An annotation once collected is never
   forgotten, even if it is deleted in Label Studio later; a deleted project is reopened with only
   the unanswered pairs; a lost ledger re-adopts its project (found by the run and batch marks);
4. when every pair has a decision, returns the answers and writes who labelled what (user id,
   email, time, what they said) into each pair's lineage and `meta["human_annotations"]`;
   otherwise it polls until `wait_s` has passed and then raises `AnnotationsPending` naming the
   project, how many are decided, and how to resume. Stage 1 then writes nothing for the
   iteration; running the same command again (`--resume`) repeats the iteration, which finds the
   same project and the annotations made meanwhile. The iteration's RM training is deterministic
   (seeded), so the repeat routes the same pairs to people; were it not, new pairs become new
   tasks and the earlier answers stay in the ledger (`last_counts["not_in_this_call"]`).

The server is reached over its REST API with httpx (`LabelStudioClient`): the `label-studio-sdk`
package pins opencv-python-headless<4.13, which would downgrade numpy in our environment and pull
~20 more packages (black, nltk, opencv, ...) for five endpoints.

Connection: `LABEL_STUDIO_URL` and `LABEL_STUDIO_API_KEY` (a legacy token, sent as
`Authorization: Token ...`).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rewardops.curation.human import (
    CHOICE_A,
    CHOICE_B,
    CHOICE_UNDECIDABLE,
    LABEL_CONFIG,
    LabelStudioFormatError,
    choice_of,
    label_studio_task,
)
from rewardops.data.schema import PreferencePair
from rewardops.errors import ConfigError, DataError, RewardOpsError, ServiceError

LEDGER_FORMAT = "rewardops-labelstudio/1"
WAIT_S, POLL_S = 0.0, 10.0  # default: open the tasks and stop (no waiting); poll every 10 s when waiting
LEDGER_SUFFIX = ".labelstudio"  # the ledger folder beside a step's output: `<out>.labelstudio/`
LEDGER_EXT = ".ledger.json"  # <ledger folder>/<batch>.ledger.json; run.json there holds the run id
ENV_URL, ENV_KEY = "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"
ANNOTATOR_NAME = "label-studio"
_MARK = re.compile(r"^rewardops-(run|batch): *(\S+)$", re.M)


class LabelStudioError(ServiceError, ValueError):
    """Label Studio cannot be reached, refused a request, or holds something that does not match
    (bad input or configuration: the message says what to fix)."""


class LabelStudioNotFound(LabelStudioError):
    """HTTP 404: the project, task or annotation is not on the server (any more)."""


class AnnotationsPending(RewardOpsError, RuntimeError):
    """Some pairs of the batch have no decision yet (not an error: people are not done). Nothing is
    lost: run the same command again (`--resume`, or `--wait SECONDS`) to collect them."""

    exit_code, label = 3, "waiting for people"

    def __init__(self, message: str, *, batch: str, project: int, url: str, done: int, total: int) -> None:
        super().__init__(message)
        self.batch, self.project, self.url, self.done, self.total = batch, project, url, done, total


# -- the REST client -------------------------------------------------------------------------------


class LabelStudioClient:
    """The few Label Studio endpoints the loop needs (Label Studio >= 1.x REST API)."""

    def __init__(self, url: str, token: str, timeout: float = 60.0, transport: Any = None) -> None:
        import httpx

        if not url or not token:
            raise LabelStudioError(f"Label Studio needs a URL and an API token (set {ENV_URL} and {ENV_KEY})")
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Token {token}"})

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> LabelStudioClient:
        env = os.environ if environ is None else environ
        missing = [k for k in (ENV_URL, ENV_KEY) if not env.get(k)]
        if missing:
            raise LabelStudioError(f"Label Studio: {' and '.join(missing)} not set (the server URL, e.g. "
                                   "http://127.0.0.1:8080, and a user's legacy API token from Account & Settings)")
        return cls(env[ENV_URL], env[ENV_KEY])

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        try:
            r = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise LabelStudioError(f"Label Studio at {self.url} unreachable ({method} {path}: {exc}); "
                                   f"is the server running and {ENV_URL} right?") from exc
        if r.status_code in (401, 403):
            raise LabelStudioError(f"Label Studio at {self.url} refused the token ({method} {path}: HTTP {r.status_code}); "
                                   f"check {ENV_KEY} (a legacy token; the organization must allow legacy tokens)")
        if r.status_code == 404:
            raise LabelStudioNotFound(f"Label Studio at {self.url}: {method} {path} not found (HTTP 404)")
        if r.status_code >= 400:
            raise LabelStudioError(f"Label Studio at {self.url}: {method} {path} failed (HTTP {r.status_code}: {r.text[:300]})")
        return r.json() if r.content else None

    def whoami(self) -> dict[str, Any]:
        return self._call("GET", "/api/current-user/whoami")

    def users(self) -> dict[int, dict[str, Any]]:
        data = self._call("GET", "/api/users/")
        rows = data.get("results", data) if isinstance(data, dict) else data
        return {int(u["id"]): u for u in rows}

    def project(self, project_id: int) -> dict[str, Any]:
        return self._call("GET", f"/api/projects/{int(project_id)}/")

    def projects(self) -> list[dict[str, Any]]:
        out, page = [], 1
        while page < 10_000:  # bounded: 100 per page
            data = self._call("GET", "/api/projects/", params={"page": page, "page_size": 100})
            rows = data.get("results", []) if isinstance(data, dict) else data
            out.extend(rows)
            if not isinstance(data, dict) or not data.get("next"):
                break
            page += 1
        return out

    def create_project(self, title: str, description: str, label_config: str, instruction: str) -> dict[str, Any]:
        return self._call("POST", "/api/projects/", json={
            "title": title, "description": description, "label_config": label_config,
            "expert_instruction": instruction, "show_instruction": True, "show_skip_button": True,
            "maximum_annotations": 1,
        })

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> None:
        self._call("POST", f"/api/projects/{int(project_id)}/import", json=tasks)

    def export(self, project_id: int) -> list[dict[str, Any]]:
        """Every task with its annotations (Label Studio's JSON export)."""
        data = self._call("GET", f"/api/projects/{int(project_id)}/export",
                          params={"exportType": "JSON", "download_all_tasks": "true"})
        if not isinstance(data, list):
            raise LabelStudioError(f"Label Studio at {self.url}: the export of project {project_id} is not a task list")
        return data

    def annotate(self, task_id: int, choice: str, cancelled: bool = False) -> dict[str, Any]:
        """Answer a task as the token's user (what a person does in the UI; used by tests and scripts)."""
        result = [] if cancelled else [{"from_name": "preference", "to_name": "response_a", "type": "choices",
                                        "value": {"choices": [choice]}}]
        return self._call("POST", f"/api/tasks/{int(task_id)}/annotations/",
                          json={"result": result, "was_cancelled": cancelled})

    def delete_annotation(self, annotation_id: int) -> None:
        self._call("DELETE", f"/api/annotations/{int(annotation_id)}/")

    def delete_project(self, project_id: int) -> None:
        self._call("DELETE", f"/api/projects/{int(project_id)}/")


# -- the ledger ------------------------------------------------------------------------------------


def _write_json_atomic(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(value, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LabelStudioError(f"{path}: {what} is not valid JSON ({exc}); restore it from a backup or move it "
                               "away (the annotations themselves are still in Label Studio)") from exc


def run_id(state_dir: str | Path) -> str:
    """This curation run's id (created on first use, then read back)."""
    path = Path(state_dir) / "run.json"
    if path.is_file():
        info = _read_json(path, "the Label Studio run file")
        if not isinstance(info, dict) or not isinstance(info.get("run"), str):
            raise LabelStudioError(f"{path}: no 'run' id; move the file away to start a new run")
        return info["run"]
    rid = uuid.uuid4().hex[:16]
    _write_json_atomic(path, {"run": rid, "created_at": _now()})
    return rid


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _marks(project: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in _MARK.findall(project.get("description") or "")}


def batch_of(pairs: Sequence[PreferencePair]) -> str:
    """The stage-1 iteration the pairs were retrieved in (from their lineage), else a content key."""
    its = set()
    for p in pairs:
        found = [m.group(1) for e in p.lineage if (m := re.match(r"stage1:(iter-\d+):retrieved", e))]
        its.add(found[-1] if found else None)
    if len(its) == 1 and None not in its:
        return its.pop()
    digest = hashlib.sha256("\n".join(sorted(p.id for p in pairs)).encode()).hexdigest()[:12]
    return f"batch-{digest}"


def _decide(votes: Counter, min_votes: int) -> tuple[str, str | None]:
    """('pending'|'undecidable'|'decided', choice). The majority decides; a tie or a majority of
    'Cannot decide' is undecidable."""
    if sum(votes.values()) < min_votes:
        return "pending", None
    top = votes.most_common()
    if (len(top) > 1 and top[0][1] == top[1][1]) or top[0][0] == CHOICE_UNDECIDABLE:
        return "undecidable", None
    return "decided", top[0][0]


# -- the annotator ---------------------------------------------------------------------------------


class LabelStudioAnnotator:
    """Human verification through a Label Studio server; see the module docstring."""

    name = ANNOTATOR_NAME

    def __init__(self, client: LabelStudioClient, state_dir: str | Path, *, wait_s: float = WAIT_S, poll_s: float = POLL_S,
                 min_annotations: int = 1, seed: int = 0, resume: bool = False, batch: str | None = None,
                 sleep: Callable[[float], None] = time.sleep, log: Callable[[str], None] | None = None) -> None:
        if wait_s < 0 or poll_s <= 0 or min_annotations < 1:
            raise ConfigError(f"wait_s={wait_s} (>= 0), poll_s={poll_s} (> 0), min_annotations={min_annotations} (>= 1)")
        self.client = client
        self.state_dir = Path(state_dir)
        self.wait_s, self.poll_s, self.min_annotations, self.seed = wait_s, poll_s, min_annotations, seed
        self.resume = resume
        self.batch = batch  # set by the caller for a named batch; else derived from the pairs
        self._sleep = sleep
        self._log = log or (lambda msg: None)
        if resume and not (self.state_dir / "run.json").is_file():
            raise LabelStudioError(f"{self.state_dir}: nothing to resume (no run.json): run the same "
                                   "command without --resume first; it opens the Label Studio tasks")
        self.run = run_id(self.state_dir)
        self.last_counts: Counter = Counter()

    # ledger -------------------------------------------------------------------------------------
    def _ledger_path(self, batch: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", batch):
            raise ConfigError(f"batch name {batch!r}: letters, digits, '-', '_', '.' only")
        return self.state_dir / f"{batch}{LEDGER_EXT}"

    def _load_ledger(self, batch: str) -> dict[str, Any] | None:
        path = self._ledger_path(batch)
        if not path.is_file():
            return None
        led = _read_json(path, "the Label Studio ledger")
        if not isinstance(led, dict) or led.get("format") != LEDGER_FORMAT:
            raise LabelStudioError(f"{path}: not a {LEDGER_FORMAT} ledger")
        if led.get("run") != self.run:
            raise LabelStudioError(f"{path}: ledger of run {led.get('run')!r}, but {self.state_dir} is run {self.run!r}; "
                                   "the file was copied from another run: move it away")
        return led

    def _save(self, led: dict[str, Any]) -> None:
        led["updated_at"] = _now()
        _write_json_atomic(self._ledger_path(led["batch"]), led)

    def _decided_elsewhere(self, batch: str) -> dict[str, dict[str, Any]]:
        """pair id -> its record in another batch's ledger of this run, where people decided it."""
        out: dict[str, dict[str, Any]] = {}
        for path in sorted(self.state_dir.glob(f"*{LEDGER_EXT}")):
            name = path.name[: -len(LEDGER_EXT)]
            if name == batch:
                continue
            led = self._load_ledger(name)
            for pid, rec in (led or {}).get("tasks", {}).items():
                state, _ = _decide(Counter(a["choice"] for a in rec.get("annotations", {}).values()
                                           if not a.get("cancelled") and a.get("choice")), self.min_annotations)
                if state != "pending":
                    out[pid] = {**rec, "batch": led["batch"], "project": led["project"]}
        return out

    # project ------------------------------------------------------------------------------------
    def _check_project(self, project: dict[str, Any], batch: str) -> None:
        marks = _marks(project)
        if marks.get("run") != self.run or marks.get("batch") != batch:
            what = (f"run {marks.get('run')}, batch {marks.get('batch')}" if marks else "not a RewardOps project")
            raise LabelStudioError(
                f"Label Studio project {project.get('id')} ({project.get('title')!r}) at {self.client.url} is {what}; "
                f"this is run {self.run}, batch {batch}. Point the ledger {self._ledger_path(batch)} at the right "
                "project, or move it away to open a new project")

    def _open(self, batch: str) -> dict[str, Any]:
        led = self._load_ledger(batch)
        if led is not None:
            if led.get("url") != self.client.url:
                self._log(f"label studio: ledger {batch} was opened at {led.get('url')}, now {self.client.url}")
            try:
                project = self.client.project(led["project"])
            except LabelStudioNotFound:
                # deleted on the server: reopen the batch in a new project; what people already said
                # stays in the ledger and counts, only the unanswered pairs become new tasks
                kept = sum(bool(t.get("annotations")) for t in led["tasks"].values())
                project = self._create(batch)
                self._log(f"label studio: project {led['project']} of {batch} is gone from {self.client.url}; reopened "
                          f"as project {project['id']} ({kept} answered pairs kept from the ledger)")
                led.setdefault("previous_projects", []).append(led["project"])
                led["project"] = int(project["id"])
                led["tasks"] = {pid: {**rec, "task": None} for pid, rec in led["tasks"].items() if rec.get("annotations")}
                self._save(led)
            self._check_project(project, batch)
            return led
        title = f"RewardOps {self.run[:8]} {batch}"
        found = [p for p in self.client.projects() if _marks(p) == {"run": self.run, "batch": batch}]
        if found:  # the ledger was lost after the project was made: reuse it
            project = found[0]
            self._log(f"label studio: reusing project {project['id']} ({title}) found on the server")
        else:
            project = self._create(batch)
        led = {"format": LEDGER_FORMAT, "run": self.run, "batch": batch, "url": self.client.url,
               "project": int(project["id"]), "seed": self.seed, "created_at": _now(), "tasks": {}}
        if found:  # adopt the tasks this run already put there (the annotations are collected next)
            for task in self.client.export(led["project"]):
                data = task.get("data") or {}
                if data.get("rewardops_run") == self.run and data.get("rewardops_batch") == batch and "rewardops_id" in data:
                    led["tasks"][data["rewardops_id"]] = {"task": task.get("id"), "annotations": {},
                                                          "a_is_listed_chosen": bool(data.get("a_is_listed_chosen"))}
        self._save(led)
        return led

    def _create(self, batch: str) -> dict[str, Any]:
        from rewardops.curation.human import GLOBAL_GUIDELINE

        title = f"RewardOps {self.run[:8]} {batch}"
        project = self.client.create_project(
            title, f"Gold verification for RewardOps curation.\nrewardops-run: {self.run}\nrewardops-batch: {batch}\n",
            LABEL_CONFIG, GLOBAL_GUIDELINE)
        self._log(f"label studio: opened project {project['id']} ({title})")
        return project

    def _add_tasks(self, led: dict[str, Any], pairs: Sequence[PreferencePair]) -> int:
        new = [p for p in pairs if p.id not in led["tasks"]]
        if not new:
            return 0
        tasks = []
        for p in new:
            task = label_studio_task(p, led["seed"])
            task["data"].update({"rewardops_run": self.run, "rewardops_batch": led["batch"]})
            tasks.append(task)
            led["tasks"][p.id] = {"task": None, "a_is_listed_chosen": task["data"]["a_is_listed_chosen"],
                                  "annotations": {}}
        self.client.import_tasks(led["project"], tasks)
        self._save(led)
        return len(new)

    # collecting ---------------------------------------------------------------------------------
    def collect(self, led: dict[str, Any]) -> Counter:
        """Merge the project's annotations into the ledger (never dropping one seen before)."""
        exported = self.client.export(led["project"])
        users: dict[int, dict[str, Any]] | None = None
        seen: set[str] = set()
        counts: Counter = Counter()
        where = f"Label Studio project {led['project']} at {self.client.url}"
        for task in exported:
            data = task.get("data") if isinstance(task, dict) else None
            if not isinstance(data, dict) or "rewardops_id" not in data:
                raise LabelStudioError(f"{where}: task {task.get('id') if isinstance(task, dict) else task!r} is not a "
                                       "RewardOps task (no data.rewardops_id); remove it from the project")
            pid, tid = data["rewardops_id"], task.get("id")
            if data.get("rewardops_run") != self.run or data.get("rewardops_batch") != led["batch"]:
                raise LabelStudioError(f"{where}: task {tid} (pair {pid}) belongs to run {data.get('rewardops_run')}, "
                                       f"batch {data.get('rewardops_batch')}, not run {self.run}, batch {led['batch']}; "
                                       "remove it from the project")
            rec = led["tasks"].get(pid)
            if rec is None:
                raise LabelStudioError(f"{where}: task {tid} holds pair {pid!r}, which this batch never sent "
                                       f"(ledger {self._ledger_path(led['batch'])}); remove the task")
            if pid in seen:
                raise LabelStudioError(f"{where}: pair {pid!r} appears in two tasks; delete the duplicate task")
            seen.add(pid)
            if bool(data.get("a_is_listed_chosen")) != bool(rec["a_is_listed_chosen"]):
                raise LabelStudioError(f"{where}: task {tid} (pair {pid}) shows the responses in another order than "
                                       "the ledger says; the task was edited: delete it and run again")
            rec["task"] = tid
            for k, ann in enumerate(task.get("annotations") or []):
                aid = str(ann.get("id", f"task{tid}-{k}"))
                cancelled = bool(ann.get("was_cancelled"))
                try:
                    choice = None if cancelled else choice_of(ann, f"{where}: task {tid} annotation {aid}")
                except LabelStudioFormatError as exc:
                    raise LabelStudioError(str(exc)) from exc
                who = ann.get("completed_by")
                if isinstance(who, dict):
                    uid, email = who.get("id"), who.get("email")
                else:
                    uid, email = who, None
                if email is None and uid is not None:
                    if users is None:
                        try:
                            users = self.client.users()
                        except LabelStudioError:
                            users = {}
                    email = (users.get(int(uid)) or {}).get("email")
                rec["annotations"][aid] = {"user": uid, "email": email, "choice": choice, "cancelled": cancelled,
                                           "created_at": ann.get("created_at"), "updated_at": ann.get("updated_at"),
                                           "lead_time": ann.get("lead_time")}
        missing = [pid for pid in led["tasks"] if pid not in seen]
        if missing:
            # deleted in Label Studio: what people said is kept; a task nobody answered is reopened
            unanswered = [pid for pid in missing if not led["tasks"][pid]["annotations"]]
            counts["tasks_missing_in_label_studio"] = len(missing)
            if unanswered:
                self._log(f"label studio: {len(unanswered)} tasks of {led['batch']} were deleted unanswered; reopening")
                for pid in unanswered:
                    del led["tasks"][pid]
                counts["tasks_reopened"] = len(unanswered)
        self._save(led)
        return counts

    def _state(self, rec: dict[str, Any]) -> tuple[str, str | None]:
        votes = Counter(a["choice"] for a in rec["annotations"].values() if not a.get("cancelled") and a.get("choice"))
        return _decide(votes, self.min_annotations)

    # the Annotator protocol ----------------------------------------------------------------------
    def verify(self, pairs: Sequence[PreferencePair]) -> list[bool | None]:
        if not pairs:
            return []
        ids = [p.id for p in pairs]
        if len(set(ids)) != len(ids):
            raise DataError("label studio: the batch holds the same pair id twice")
        batch = self.batch or batch_of(pairs)
        elsewhere = self._decided_elsewhere(batch)
        ask = [p for p in pairs if p.id not in elsewhere]
        led = self._open(batch) if ask else {"project": None, "tasks": {}}
        deadline = time.monotonic() + self.wait_s
        by_pair = {p.id: p for p in ask}
        while ask:
            self._add_tasks(led, [p for p in ask if p.id not in led["tasks"]])
            counts = self.collect(led)
            if counts.get("tasks_reopened"):
                self._add_tasks(led, [p for p in ask if p.id not in led["tasks"]])
            states = {pid: self._state(led["tasks"][pid]) for pid in by_pair}
            pending = [pid for pid, (s, _) in states.items() if s == "pending"]
            counts.update(s for s, _ in states.values())
            counts["reused_from_other_batches"] = len(pairs) - len(ask)
            counts["not_in_this_call"] = len(set(led["tasks"]) - set(ids))
            self.last_counts = counts
            if not pending:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                done = len(ask) - len(pending)
                raise AnnotationsPending(
                    f"Label Studio project {led['project']} ({self.client.url}/projects/{led['project']}/data) has "
                    f"{done} of {len(ask)} pairs of {batch} decided; {len(pending)} still need a person "
                    f"(e.g. {', '.join(pending[:3])}). Everything labelled so far is in "
                    f"{self._ledger_path(batch)}. When people have finished, run the same command again with "
                    "--resume (or give --wait SECONDS to poll)",
                    batch=batch, project=led["project"], url=self.client.url, done=done, total=len(ask))
            self._log(f"label studio: {batch}: {len(ask) - len(pending)}/{len(ask)} decided; polling")
            self._sleep(min(self.poll_s, left))

        out: list[bool | None] = []
        for p in pairs:
            if p.id in elsewhere:
                rec, proj, b = elsewhere[p.id], elsewhere[p.id]["project"], elsewhere[p.id]["batch"]
            else:
                rec, proj, b = led["tasks"][p.id], led["project"], batch
            state, choice = self._state(rec)
            self._record(p, rec, proj, b, state)
            out.append(None if state == "undecidable" else (choice == CHOICE_A) == bool(rec["a_is_listed_chosen"]))
        return out

    def _record(self, pair: PreferencePair, rec: dict[str, Any], project: int, batch: str, state: str) -> None:
        """Who labelled what, on the pair itself (lineage + meta), before stage 1 applies the verdict."""
        anns = [a for a in rec["annotations"].values() if not a.get("cancelled") and a.get("choice")]
        people = []
        for a in sorted(anns, key=lambda a: str(a.get("created_at"))):
            said = {CHOICE_A: "A", CHOICE_B: "B", CHOICE_UNDECIDABLE: "undecidable"}[a["choice"]]
            if said in ("A", "B"):
                said = "chosen" if (said == "A") == bool(rec["a_is_listed_chosen"]) else "rejected"
            people.append({"user": a.get("user"), "email": a.get("email"), "said": said,
                           "created_at": a.get("created_at"), "updated_at": a.get("updated_at")})
        who = ";".join(f"{x['email'] or 'user'}#{x['user']}@{x['created_at']}={x['said']}" for x in people)
        pair.lineage.append(f"label-studio:{self.client.url}/projects/{project}:task={rec.get('task')}:{state}:{who}")
        pair.meta = {**pair.meta, "human_annotations": {"source": "label-studio", "url": self.client.url,
                                                        "project": project, "batch": batch, "task": rec.get("task"),
                                                        "run": self.run, "annotations": people}}


def pending_summary(state_dir: str | Path) -> dict[str, Any]:
    """Per batch ledger: project, tasks and how many have annotations (for status output)."""
    out = {}
    for path in sorted(Path(state_dir).glob(f"*{LEDGER_EXT}")):
        led = _read_json(path, "the Label Studio ledger")
        tasks = led.get("tasks", {})
        out[led.get("batch", path.name)] = {
            "project": led.get("project"), "url": led.get("url"), "tasks": len(tasks),
            "with_annotations": sum(1 for t in tasks.values() if any(not a.get("cancelled") for a in t["annotations"].values())),
        }
    return out


_OPTIONS: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("labelstudio_options", default={})


@contextlib.contextmanager
def options(**values: Any) -> Iterator[None]:
    """How the annotator built inside a step behaves (the CLI's --wait/--resume, the KFP steps'
    ledger folder): `wait_s`, `poll_s`, `resume`, `ledger` (folder), `log` (callable). None values
    are ignored."""
    unknown = set(values) - {"wait_s", "poll_s", "resume", "ledger", "log"}
    if unknown:
        raise TypeError(f"labelstudio.options: unknown {sorted(unknown)}")
    token = _OPTIONS.set({**_OPTIONS.get(), **{k: v for k, v in values.items() if v is not None}})
    try:
        yield
    finally:
        _OPTIONS.reset(token)


def ledger_dir(output: str | Path | None) -> Path:
    """Where the run's ledger lives: `options(ledger=...)`, else `<output>.labelstudio` beside the
    step's output (outside it: a step's output folder is replaced whole when it is committed)."""
    chosen = _OPTIONS.get().get("ledger")
    if chosen is not None:
        return Path(chosen)
    if output is None:
        raise LabelStudioError("the Label Studio annotator needs a folder for its ledger (the step's output)")
    out = Path(output)
    return out.with_name(out.name + LEDGER_SUFFIX)


def make_annotator(arg: str, settings: Any = None, *, output: str | Path | None = None, **context: Any) -> LabelStudioAnnotator:
    """The `labelstudio[:URL]` annotator of `curation.builders.ANNOTATORS`: the server from URL or
    LABEL_STUDIO_URL, the token from LABEL_STUDIO_API_KEY; the ledger beside `output`."""
    opts = _OPTIONS.get()
    env = dict(os.environ)
    if arg:
        env[ENV_URL] = arg
    client = LabelStudioClient.from_env(env)
    return LabelStudioAnnotator(client, ledger_dir(output), wait_s=float(opts.get("wait_s", WAIT_S)),
                                poll_s=float(opts.get("poll_s", POLL_S)), resume=bool(opts.get("resume", False)),
                                seed=int(getattr(settings, "seed", 0) or 0), log=opts.get("log"))


def iter_decisions(state_dir: str | Path) -> Iterable[tuple[str, str, dict[str, Any]]]:
    """(batch, pair id, ledger record) for every pair in every ledger of the run."""
    for path in sorted(Path(state_dir).glob(f"*{LEDGER_EXT}")):
        led = _read_json(path, "the Label Studio ledger")
        for pid, rec in led.get("tasks", {}).items():
            yield led["batch"], pid, rec


# -- the pipeline's two steps (KFP components call these) -------------------------------------------


def _require_labelstudio(settings: Any) -> None:
    kind = str(getattr(settings, "annotator", "")).partition(":")[0]
    if kind != "labelstudio":
        raise LabelStudioError(f"the Label Studio steps need settings annotator 'labelstudio[:URL]', got "
                               f"{getattr(settings, 'annotator', None)!r}; set it in the pipeline's settings")


def open_iteration(state: str | Path, ledger: str | Path, iteration: int, settings: Any) -> dict[str, Any]:
    """Step 1: run stage-1 iteration `iteration` on `state` up to its human batch, which is opened
    as a Label Studio project; the run's ledger goes to `ledger` (this step's output). Nothing of
    the iteration itself is kept: the collect step repeats it with the same inputs."""
    import tempfile

    from rewardops.curation.steps import stage1_iteration

    _require_labelstudio(settings)
    ledger = Path(ledger)
    ledger.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="labelstudio-open-") as tmp, options(ledger=ledger, wait_s=0.0, resume=False):
        try:
            stage1_iteration(state, Path(tmp) / "state", iteration, settings)
        except AnnotationsPending as exc:
            info = {"batch": exc.batch, "project": exc.project, "url": exc.url, "decided": exc.done,
                    "tasks": exc.total, "complete": False}
        else:  # every pair was already decided by people (e.g. a rerun after they finished)
            info = {"complete": True}
    info["ledgers"] = pending_summary(ledger)
    _write_json_atomic(ledger / "opened.json", {**info, "iteration": iteration})
    return info


def collect_iteration(state: str | Path, opened: str | Path, out: str | Path, iteration: int, settings: Any,
                      wait_s: float = WAIT_S, poll_s: float = POLL_S) -> dict[str, Any]:
    """Step 2 (resumable): the same iteration again, now collecting what people answered in the
    project step 1 opened (its ledger is `opened`, copied: an input is never written), polling up
    to `wait_s`. Raises AnnotationsPending when people are not done: rerun (KFP retries) the step;
    annotations stay in Label Studio, nothing is lost."""
    import shutil
    import tempfile

    from rewardops.curation.steps import stage1_iteration

    _require_labelstudio(settings)
    opened = Path(opened)
    if not (opened / "run.json").is_file():
        raise LabelStudioError(f"{opened}: no Label Studio ledger (run.json); this input must be the output of the "
                               "step that opened the tasks (labelstudio_open) for the same state")
    with tempfile.TemporaryDirectory(prefix="labelstudio-collect-") as tmp:
        ledger = Path(tmp) / "ledger"
        shutil.copytree(opened, ledger)
        with options(ledger=ledger, wait_s=wait_s, poll_s=poll_s, resume=True):
            metrics = stage1_iteration(state, out, iteration, settings)
        summary = pending_summary(ledger)
    return {**metrics, "labelstudio_tasks": float(sum(v["tasks"] for v in summary.values())),
            "labelstudio_with_annotations": float(sum(v["with_annotations"] for v in summary.values()))}
