"""People in the loop through a real Label Studio server (stage 1's human verification).

`LabelStudioAnnotator` is an `Annotator` (see protocols.py) that, for each batch of pairs stage 1
routes to people (one batch per iteration, named from the pairs' lineage: "iter-01", ...; the
gold seed gets a content-hash name):

1. creates (or reuses) one Label Studio project per batch, its description marked with this run's
   id and the batch, with the labeling interface of `human.label_config` (paper §3.2's view:
   conversation, responses A/B side by side, one key per choice, the item's guideline collapsed);
   `annotators_per_pair` people answer each task (Label Studio's overlap), a skipped task goes back
   to its skipper's queue and a pair skipped by `labelstudio_skip_limit` people is undecidable;
2. imports one *blind* task per pair not yet in the project (`human.blind_task`: no pair id, no
   listed label, no model verdict; a pair people already decided in another batch of the same run
   is answered from that decision, not asked again);
3. collects the annotations (Label Studio's JSON export) into a ledger on disk,
   `<ledger folder>/<batch>.ledger.json`, written atomically; the folder is `<output>.labelstudio/`
   beside the step's output (or `options(ledger=...)`). The ledger binds each verdict to what
   people saw: it holds each task's content digest and A/B mapping, both checked on every collect
   and recomputed from the pair before a verdict is used. Votes are what the server holds *now*:
   an answer deleted there stops counting (kept in the ledger, marked withdrawn), an edited task is
   refused, answers by people outside `labelstudio_annotators` do not count, one person has one
   vote; every run (`--resume` included) re-checks each ledger of the run against the server. A
   deleted task or project is reopened (its old answers move to the ledger's history); a lost
   ledger re-adopts its project (found by the run and batch marks) and links its tasks again;
4. when every pair has a decision, returns the answers and writes who labelled what (user id,
   email, time, what they said, how strongly, their reason) into each pair's lineage and
   `meta["human_annotations"]`, logs the batch's confirmed / relabelled / undecidable counts and the
   people's agreement; otherwise it polls until `wait_s` has passed and then raises
   `AnnotationsPending` naming the project, the pending Label Studio task numbers and who skipped
   them, and how to resume. Stage 1 then writes nothing for the iteration; running the same command
   again (`--resume`) repeats the iteration, which finds the same project and the annotations made
   meanwhile. The iteration's RM training is deterministic (seeded), so the repeat routes the same
   pairs to people; were it not, new pairs become new tasks and the earlier answers stay in the
   ledger (`last_counts["not_in_this_call"]`).

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
    ALL_CHOICES,
    GLOBAL_GUIDELINE,
    TASK_FIELDS,
    BlindTask,
    LabelStudioFormatError,
    blind_task,
    choice_of,
    data_digest,
    label_config,
    note_of,
    side_of,
)
from rewardops.data.schema import PreferencePair
from rewardops.errors import ConfigError, DataError, RewardOpsError, ServiceError

LEDGER_FORMAT = "rewardops-labelstudio/2"
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

    def create_project(self, title: str, description: str, label_config: str, instruction: str, *,
                       maximum_annotations: int = 1, skip: bool = True) -> dict[str, Any]:
        """A project whose instructions never pop up (they sit behind the labeling screen's
        Instructions button; the page itself holds the item's guideline); `maximum_annotations`
        people answer each task; a skipped task goes back to the end of the skipper's own queue."""
        return self._call("POST", "/api/projects/", json={
            "title": title, "description": description, "label_config": label_config,
            "expert_instruction": instruction, "show_instruction": False, "show_skip_button": skip,
            "skip_queue": "REQUEUE_FOR_ME", "maximum_annotations": maximum_annotations, "show_overlap_first": True,
            "show_annotation_history": False, "enable_empty_annotation": False,
        })

    def hide_columns(self, project_id: int, fields: Sequence[str]) -> None:
        """The project's data-manager tab (shared by everyone in the organization) with the task
        data columns hidden: the table lists tasks and their progress, the page shows the pair."""
        columns = [f"tasks:data.{f}" for f in fields]
        self._call("POST", "/api/dm/views/", json={"project": int(project_id), "data": {
            "title": "Tasks", "hiddenColumns": {"explore": columns, "labeling": columns}}})

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> None:
        self._call("POST", f"/api/projects/{int(project_id)}/import", json=tasks)

    def export(self, project_id: int) -> list[dict[str, Any]]:
        """Every task with its annotations (Label Studio's JSON export)."""
        data = self._call("GET", f"/api/projects/{int(project_id)}/export",
                          params={"exportType": "JSON", "download_all_tasks": "true"})
        if not isinstance(data, list):
            raise LabelStudioError(f"Label Studio at {self.url}: the export of project {project_id} is not a task list")
        return data

    def annotate(self, task_id: int, choice: str, cancelled: bool = False, note: str | None = None) -> dict[str, Any]:
        """Answer a task as the token's user (what a person does in the UI; used by tests and scripts)."""
        result = [] if cancelled else [{"from_name": "preference", "to_name": "response_a", "type": "choices",
                                        "value": {"choices": [choice]}}]
        if note and not cancelled:
            result.append({"from_name": "note", "to_name": "response_a", "type": "textarea", "value": {"text": [note]}})
        return self._call("POST", f"/api/tasks/{int(task_id)}/annotations/",
                          json={"result": result, "was_cancelled": cancelled})

    def next_task(self, project_id: int) -> dict[str, Any] | None:
        """The task Label Studio's labeling stream shows the token's user next (None: their queue is empty)."""
        try:
            return self._call("GET", f"/api/projects/{int(project_id)}/next")
        except LabelStudioNotFound:
            return None

    def update_task(self, task_id: int, data: dict[str, Any]) -> None:
        """Replace a task's data (what an admin can do in the UI; the tests use it to edit a task)."""
        self._call("PATCH", f"/api/tasks/{int(task_id)}/", json={"data": data})

    def update_annotation(self, annotation_id: int, choice: str) -> None:
        """Change an answer (what a person does when they reopen a task they labelled)."""
        self._call("PATCH", f"/api/annotations/{int(annotation_id)}/", json={"result": [
            {"from_name": "preference", "to_name": "response_a", "type": "choices", "value": {"choices": [choice]}}]})

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


def run_id(state_dir: str | Path, adopt: str | None = None) -> str:
    """This curation run's id: created on first use (or `adopt`ed: the run of the seed that made the
    state, so the seed's and every stage-1 project carry one run id), then read back."""
    path = Path(state_dir) / "run.json"
    if path.is_file():
        info = _read_json(path, "the Label Studio run file")
        if not isinstance(info, dict) or not isinstance(info.get("run"), str):
            raise LabelStudioError(f"{path}: no 'run' id; move the file away to start a new run")
        if adopt and info["run"] != adopt:
            raise LabelStudioError(f"{path}: Label Studio run {info['run']}, but the curation state was labelled in run "
                                   f"{adopt}; move {path.parent} away to continue the state's run")
        return info["run"]
    if adopt is not None and not re.fullmatch(r"[0-9a-f]{16}", adopt):
        raise LabelStudioError(f"run id {adopt!r} in the curation state is not a Label Studio run id")
    rid = adopt or uuid.uuid4().hex[:16]
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


def agreement(votes_per_pair: Iterable[Sequence[str]]) -> dict[str, float | int | None]:
    """Inter-annotator agreement over pairs with two or more votes ('A', 'B', 'undecidable'):
    percent agreement (the share of agreeing pairs of votes within a pair, averaged over pairs)
    and Krippendorff's alpha for nominal data (None when undefined: fewer than two categories)."""
    units = [list(v) for v in votes_per_pair if len(v) >= 2]
    if not units:
        return {"pairs": 0, "percent": None, "alpha": None}
    percent = sum(sum(a == b for i, a in enumerate(u) for b in u[i + 1:]) / (len(u) * (len(u) - 1) / 2)
                  for u in units) / len(units)
    # coincidence matrix o[c][k]: each ordered pair of votes within a unit, weighted 1/(m_u - 1)
    o: Counter = Counter()
    for u in units:
        for i, a in enumerate(u):
            for j, b in enumerate(u):
                if i != j:
                    o[(a, b)] += 1.0 / (len(u) - 1)
    n_c: Counter = Counter()
    for (a, _), w in o.items():
        n_c[a] += w
    n = sum(n_c.values())
    disagree_obs = sum(w for (a, b), w in o.items() if a != b)
    disagree_exp = sum(n_c[a] * n_c[b] for a in n_c for b in n_c if a != b) / (n - 1)
    alpha = None if disagree_exp == 0 else 1.0 - disagree_obs / disagree_exp
    return {"pairs": len(units), "percent": round(percent, 4), "alpha": None if alpha is None else round(alpha, 4)}


# -- the annotator ---------------------------------------------------------------------------------


class LabelStudioAnnotator:
    """Human verification through a Label Studio server; see the module docstring.

    `annotators_per_pair`: people who answer each pair (Label Studio's overlap); the majority
    decides, a tie or a majority of 'Cannot decide' is undecidable. `skip_limit`: a pair skipped by
    this many people is undecidable (0: no skip button); a skipped task returns to the end of the
    skipper's own queue, so one annotator never traps a pair. `annotators`: the only people
    (emails) whose answers count (empty: everyone the server lets into the project). `graded`:
    the 'A much better ... B much better' scale instead of A / B."""

    name = ANNOTATOR_NAME

    def __init__(self, client: LabelStudioClient, state_dir: str | Path, *, wait_s: float = WAIT_S, poll_s: float = POLL_S,
                 annotators_per_pair: int | None = None, skip_limit: int | None = None, annotators: Sequence[str] = (),
                 graded: bool = False, seed: int = 0, resume: bool = False, batch: str | None = None, run: str | None = None,
                 sleep: Callable[[float], None] = time.sleep, log: Callable[[str], None] | None = None) -> None:
        from rewardops.curation.settings import PROFILES

        default = PROFILES["default"]  # the defaults are the settings' (declared once)
        annotators_per_pair = default.annotators_per_pair if annotators_per_pair is None else annotators_per_pair
        skip_limit = default.labelstudio_skip_limit if skip_limit is None else skip_limit
        if wait_s < 0 or poll_s <= 0 or annotators_per_pair < 1 or skip_limit < 0:
            raise ConfigError(f"wait_s={wait_s} (>= 0), poll_s={poll_s} (> 0), annotators_per_pair={annotators_per_pair} "
                             f"(>= 1), skip_limit={skip_limit} (>= 0)")
        self.client = client
        self.state_dir = Path(state_dir)
        self.wait_s, self.poll_s, self.seed = wait_s, poll_s, seed
        self.per_pair, self.skip_limit, self.graded = annotators_per_pair, skip_limit, graded
        self.annotators = frozenset(a.strip().lower() for a in annotators if a.strip())
        self.resume = resume
        self.batch = batch  # set by the caller for a named batch; else derived from the pairs
        self._sleep = sleep
        self._log = log or (lambda msg: None)
        if resume and not (self.state_dir / "run.json").is_file():
            raise LabelStudioError(f"{self.state_dir}: nothing to resume (no run.json): run the same "
                                   "command without --resume first; it opens the Label Studio tasks")
        self.run = run_id(self.state_dir, adopt=run)
        self.last_counts: Counter = Counter()
        self.last_summary: dict[str, Any] = {}

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
            raise LabelStudioError(f"{path}: not a {LEDGER_FORMAT} ledger (an older RewardOps wrote it, or it is not "
                                   "a ledger): finish that run with the version that started it, or move the file away")
        if led.get("run") != self.run:
            raise LabelStudioError(f"{path}: ledger of run {led.get('run')!r}, but {self.state_dir} is run {self.run!r}; "
                                   "the file was copied from another run: move it away")
        return led

    def _save(self, led: dict[str, Any]) -> None:
        led["updated_at"] = _now()
        _write_json_atomic(self._ledger_path(led["batch"]), led)

    def _blind(self, pair: PreferencePair, led: dict[str, Any]) -> BlindTask:
        return blind_task(pair, int(led["seed"]), salt=f"{self.run}:{led['batch']}")

    def _decided_elsewhere(self, batch: str) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
        """pair id -> (ledger, record) in another batch of this run where people decided it; each
        such ledger is first checked against the server again (`collect`)."""
        out: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        for path in sorted(self.state_dir.glob(f"*{LEDGER_EXT}")):
            name = path.name[: -len(LEDGER_EXT)]
            if name == batch:
                continue
            led = self._load_ledger(name)
            if led is None:
                continue
            try:
                self.collect(led)
            except LabelStudioNotFound:  # the project is gone: nothing there counts any more
                self._withdraw(led, list(led["tasks"]), "its project is gone from the server")
                self._save(led)
            for pid, rec in led["tasks"].items():
                if self._state(rec)[0] != "pending":
                    out[pid] = (led, rec)
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

    def _withdraw(self, led: dict[str, Any], pids: Sequence[str], why: str) -> None:
        """Tasks no longer on the server: their records move to the ledger's history (nothing is
        forgotten) and stop counting; the pairs become new tasks."""
        for pid in pids:
            rec = led["tasks"].pop(pid)
            led.setdefault("history", []).append({**rec, "pair": pid, "project": led["project"], "withdrawn_at": _now(),
                                                  "why": why})

    def _open(self, batch: str) -> dict[str, Any]:
        led = self._load_ledger(batch)
        if led is not None:
            if led.get("url") != self.client.url:
                self._log(f"label studio: ledger {batch} was opened at {led.get('url')}, now {self.client.url}")
            try:
                project = self.client.project(led["project"])
            except LabelStudioNotFound:
                # deleted on the server: what people said there no longer counts (it is kept in the
                # ledger's history); the batch is reopened in a new project
                answered = sum(bool(t.get("annotations")) for t in led["tasks"].values())
                self._withdraw(led, list(led["tasks"]), "its project is gone from the server")
                project = self._create(batch)
                self._log(f"label studio: project {led['project']} of {batch} is gone from {self.client.url}; reopened "
                          f"as project {project['id']} ({answered} answered pairs there no longer count)")
                led.setdefault("previous_projects", []).append(led["project"])
                led["project"] = int(project["id"])
                self._save(led)
            self._check_project(project, batch)
            return led
        title = f"RewardOps {self.run[:8]} {batch}"
        found = [p for p in self.client.projects() if _marks(p) == {"run": self.run, "batch": batch}]
        if found:  # the ledger was lost after the project was made: reuse it (its tasks are linked again)
            project = found[0]
            self._log(f"label studio: reusing project {project['id']} ({title}) found on the server")
        else:
            project = self._create(batch)
        led = {"format": LEDGER_FORMAT, "run": self.run, "batch": batch, "url": self.client.url,
               "project": int(project["id"]), "seed": self.seed, "created_at": _now(), "tasks": {},
               "settings": {"annotators_per_pair": self.per_pair, "skip_limit": self.skip_limit,
                            "annotators": sorted(self.annotators), "graded": self.graded}}
        self._save(led)
        return led

    def _create(self, batch: str) -> dict[str, Any]:
        title = f"RewardOps {self.run[:8]} {batch}"
        project = self.client.create_project(
            title, f"Gold verification for RewardOps curation.\nrewardops-run: {self.run}\nrewardops-batch: {batch}\n",
            label_config(self.graded), GLOBAL_GUIDELINE, maximum_annotations=self.per_pair, skip=self.skip_limit > 0)
        try:
            self.client.hide_columns(project["id"], [*TASK_FIELDS, "rewardops_run", "rewardops_batch"])
        except LabelStudioError as exc:  # cosmetic: the page works without it
            self._log(f"label studio: could not hide the data columns of project {project['id']} ({exc})")
        self._log(f"label studio: opened project {project['id']} ({title}): {self.client.url}/projects/{project['id']}/data "
                  f"(annotators open it and press 'Label All Tasks')")
        return project

    def _add_tasks(self, led: dict[str, Any], pairs: Sequence[PreferencePair]) -> int:
        new = [p for p in pairs if p.id not in led["tasks"]]
        if not new:
            return 0
        on_server = {}
        for task in self.client.export(led["project"]):  # tasks already there (a lost ledger): link, never duplicate
            data = task.get("data") if isinstance(task, dict) else None
            if isinstance(data, dict) and data.get("item"):
                on_server[data["item"]] = (task.get("id"), data_digest({k: data.get(k) for k in TASK_FIELDS}))
        tasks = []
        for p in new:
            b = self._blind(p, led)
            led["tasks"][p.id] = {"item": b.data["item"], "task": None, "a_is_listed_chosen": b.a_is_listed_chosen,
                                  "digest": b.digest, "annotations": {}}
            if on_server.get(b.data["item"], (None, None))[1] == b.digest:
                led["tasks"][p.id]["task"] = on_server[b.data["item"]][0]
            else:
                tasks.append(b.task(rewardops_run=self.run, rewardops_batch=led["batch"]))
        if tasks:
            self.client.import_tasks(led["project"], tasks)
        self._save(led)
        return len(tasks)

    # collecting ---------------------------------------------------------------------------------
    def collect(self, led: dict[str, Any]) -> Counter:
        """Check the ledger against the project on the server and merge its annotations in. What
        counts is what is on the server now, on a task whose content is still what was sent (its
        digest): an annotation deleted there is kept in the ledger, marked withdrawn, and no longer
        counts; an edited task is refused."""
        exported = self.client.export(led["project"])
        users: dict[int, dict[str, Any]] | None = None
        seen: set[str] = set()
        counts: Counter = Counter()
        by_item = {rec["item"]: pid for pid, rec in led["tasks"].items()}
        where = f"Label Studio project {led['project']} at {self.client.url}"
        for task in exported:
            data = task.get("data") if isinstance(task, dict) else None
            tid = task.get("id") if isinstance(task, dict) else task
            if not isinstance(data, dict) or "item" not in data:
                raise LabelStudioError(f"{where}: task {tid} is not a RewardOps task (no data.item); remove it from "
                                       "the project")
            if data.get("rewardops_run") != self.run or data.get("rewardops_batch") != led["batch"]:
                raise LabelStudioError(f"{where}: task {tid} belongs to run {data.get('rewardops_run')}, batch "
                                       f"{data.get('rewardops_batch')}, not run {self.run}, batch {led['batch']}; "
                                       "remove it from the project")
            pid = by_item.get(data["item"])
            if pid is None:
                raise LabelStudioError(f"{where}: task {tid} holds item {data['item']!r}, which this batch never sent "
                                       f"(ledger {self._ledger_path(led['batch'])}); remove the task")
            if pid in seen:
                raise LabelStudioError(f"{where}: task {tid} repeats pair {pid!r}; delete the duplicate task")
            seen.add(pid)
            rec = led["tasks"][pid]
            if data_digest({k: data.get(k) for k in TASK_FIELDS}) != rec["digest"]:
                raise LabelStudioError(f"{where}: task {tid} (pair {pid}) no longer shows what RewardOps sent (it was "
                                       "edited after import), so its answers are not about this pair: delete the task "
                                       "and run again (it is sent afresh)")
            if rec.get("task") not in (None, tid):
                raise LabelStudioError(f"{where}: pair {pid} was task {rec['task']}, now task {tid}; delete the newer task")
            rec["task"] = tid
            present = set()
            for k, ann in enumerate(task.get("annotations") or []):
                aid = str(ann.get("id", f"task{tid}-{k}"))
                present.add(aid)
                cancelled = bool(ann.get("was_cancelled"))
                try:
                    choice = None if cancelled else choice_of(ann, f"{where}: task {tid} annotation {aid}")
                except LabelStudioFormatError as exc:
                    raise LabelStudioError(str(exc)) from exc
                who = ann.get("completed_by")
                uid, email = (who.get("id"), who.get("email")) if isinstance(who, dict) else (who, None)
                if email is None and uid is not None:
                    if users is None:
                        try:
                            users = self.client.users()
                        except LabelStudioError:
                            users = {}
                    email = (users.get(int(uid)) or {}).get("email")
                listed = not self.annotators or (email or "").lower() in self.annotators
                strength = ALL_CHOICES.get(choice, (None, None))[1] if choice else None
                before = rec["annotations"].get(aid)
                revisions = list((before or {}).get("revisions", []))
                if before and (before.get("choice"), before.get("cancelled")) != (choice, cancelled):
                    # the person changed their answer in Label Studio: the latest counts, the earlier is kept
                    revisions.append({k: before.get(k) for k in ("choice", "cancelled", "reason", "updated_at")})
                rec["annotations"][aid] = {
                    "user": uid, "email": email, "choice": choice, "side": side_of(choice), "strength": strength,
                    "reason": None if cancelled else note_of(ann), "cancelled": cancelled, "listed": listed,
                    "created_at": ann.get("created_at"), "updated_at": ann.get("updated_at"),
                    "lead_time": ann.get("lead_time"), "withdrawn_at": None, "revisions": revisions}
                if not listed:
                    counts["unlisted_annotations"] += 1
            for aid, a in rec["annotations"].items():
                if aid not in present and not a.get("withdrawn_at"):
                    a["withdrawn_at"] = _now()  # deleted in Label Studio: kept here, no longer counts
                    counts["annotations_withdrawn"] += 1
        missing = [pid for pid in led["tasks"] if pid not in seen and led["tasks"][pid].get("task") is not None]
        if missing:
            self._log(f"label studio: {len(missing)} tasks of {led['batch']} were deleted in Label Studio; reopening "
                      "them (what was said there is kept in the ledger's history and no longer counts)")
            self._withdraw(led, missing, "the task was deleted in Label Studio")
            counts["tasks_reopened"] = len(missing)
        if counts["unlisted_annotations"]:
            self._log(f"label studio: {counts['unlisted_annotations']} answers in project {led['project']} are by people "
                      "not in the settings' labelstudio_annotators; they do not count")
        self._save(led)
        return counts

    def _people(self, rec: dict[str, Any]) -> list[dict[str, Any]]:
        """Each listed person's latest annotation still on the server (one person, one vote)."""
        latest: dict[Any, dict[str, Any]] = {}
        for a in rec["annotations"].values():
            if a.get("withdrawn_at") or not a.get("listed", True):
                continue
            key = a.get("email") or a.get("user")
            if key not in latest or str(a.get("updated_at") or a.get("created_at")) >= \
                    str(latest[key].get("updated_at") or latest[key].get("created_at")):
                latest[key] = a
        return sorted(latest.values(), key=lambda a: str(a.get("created_at")))

    def _state(self, rec: dict[str, Any]) -> tuple[str, str | None]:
        """('pending'|'undecidable'|'skipped'|'decided', 'A'|'B'|None)."""
        people = self._people(rec)
        votes = [a["side"] or "undecidable" for a in people if not a.get("cancelled") and a.get("choice")]
        skips = sum(1 for a in people if a.get("cancelled"))
        if len(votes) >= self.per_pair:
            top = Counter(votes).most_common()
            if (len(top) > 1 and top[0][1] == top[1][1]) or top[0][0] == "undecidable":
                return "undecidable", None
            return "decided", top[0][0]
        if self.skip_limit and skips >= self.skip_limit:
            return "skipped", None
        return "pending", None

    def _check_binding(self, pair: PreferencePair, led: dict[str, Any], rec: dict[str, Any]) -> bool:
        """The A/B mapping of `pair`, recomputed, after checking the ledger says the same (a ledger
        edited by hand is refused)."""
        b = self._blind(pair, led)
        if rec.get("digest") != b.digest or bool(rec.get("a_is_listed_chosen")) != b.a_is_listed_chosen:
            raise LabelStudioError(f"{self._ledger_path(led['batch'])}: the record of pair {pair.id} does not match the "
                                   "pair (content digest or A/B order differ): the ledger or the data was changed; "
                                   "restore them or move the ledger away")
        return b.a_is_listed_chosen

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
        led = self._open(batch) if ask else {"project": None, "tasks": {}, "batch": batch}
        deadline = time.monotonic() + self.wait_s
        by_pair = {p.id: p for p in ask}
        while ask:
            self._add_tasks(led, [p for p in ask if p.id not in led["tasks"]])
            counts = self.collect(led)
            if counts.get("tasks_reopened"):
                self._add_tasks(led, [p for p in ask if p.id not in led["tasks"]])
                counts.update(self.collect(led))
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
                    f"{done} of {len(ask)} pairs of {batch} decided; {len(pending)} still need "
                    f"{self._need()}: {self._describe_pending(led, pending)}. Everything labelled so far is in "
                    f"{self._ledger_path(batch)}. When people have finished, run the same command again with "
                    "--resume (or give --wait SECONDS to poll)",
                    batch=batch, project=led["project"], url=self.client.url, done=done, total=len(ask))
            self._log(f"label studio: {batch}: {len(ask) - len(pending)}/{len(ask)} decided; polling")
            self._sleep(min(self.poll_s, left))

        out: list[bool | None] = []
        summary: Counter = Counter()
        votes_per_pair = []
        for p in pairs:
            where_led, rec = elsewhere[p.id] if p.id in elsewhere else (led, led["tasks"][p.id])
            a_is_chosen = self._check_binding(p, where_led, rec)
            state, side = self._state(rec)
            self._record(p, rec, where_led, state, a_is_chosen)
            votes_per_pair.append([a["side"] or "undecidable" for a in self._people(rec)
                                   if not a.get("cancelled") and a.get("choice")])
            if state == "decided":
                verdict = (side == "A") == a_is_chosen
                summary["confirmed" if verdict else "relabelled"] += 1
                out.append(verdict)
            else:
                summary[state] += 1
                out.append(None)
        agree = agreement(votes_per_pair)
        self.last_summary = {"batch": batch, "project": led["project"], "pairs": len(pairs), **dict(summary),
                             "agreement": agree}
        self.last_counts.update({k: v for k, v in summary.items()})
        if led["project"] is not None:
            led["summary"] = self.last_summary
            self._save(led)
        agree_text = (f"; agreement {agree['percent']:.0%} over {agree['pairs']} pairs with 2+ people"
                      + (f" (Krippendorff's alpha {agree['alpha']:.2f})" if agree["alpha"] is not None else "")
                      if agree["pairs"] else "")
        self._log(f"label studio: {batch}: {summary['confirmed']} confirmed the dataset's label, "
                  f"{summary['relabelled']} relabelled it (chose the listed rejected), {summary['undecidable']} undecidable, {summary['skipped']} skipped by "
                  f"{self.skip_limit}+ people{agree_text}")
        return out

    def _need(self) -> str:
        return "a person" if self.per_pair == 1 else f"{self.per_pair} people each"

    def _describe_pending(self, led: dict[str, Any], pending: Sequence[str], most: int = 8) -> str:
        """Pending pairs by Label Studio task number, with who skipped them."""
        parts = []
        for pid in pending[:most]:
            rec = led["tasks"][pid]
            people = self._people(rec)
            skipped = [a.get("email") or f"user {a.get('user')}" for a in people if a.get("cancelled")]
            answered = sum(1 for a in people if not a.get("cancelled") and a.get("choice"))
            bits = ([f"{answered} of {self.per_pair} answered"] if self.per_pair > 1 else []) + \
                ([f"skipped by {', '.join(skipped)}"] if skipped else [])
            parts.append(f"task {rec.get('task')}" + (f" ({'; '.join(bits)})" if bits else ""))
        more = f" and {len(pending) - most} more" if len(pending) > most else ""
        return ", ".join(parts) + more

    def _record(self, pair: PreferencePair, rec: dict[str, Any], led: dict[str, Any], state: str,
                a_is_chosen: bool) -> None:
        """Who labelled what and why, on the pair itself (lineage + meta), before stage 1 applies the verdict."""
        people = []
        for a in self._people(rec):
            if a.get("cancelled"):
                said = "skipped"
            elif a.get("side") in ("A", "B"):
                said = "chosen" if (a["side"] == "A") == a_is_chosen else "rejected"
            else:
                said = "undecidable"
            people.append({"user": a.get("user"), "email": a.get("email"), "said": said, "strength": a.get("strength"),
                           "reason": a.get("reason"), "created_at": a.get("created_at"), "updated_at": a.get("updated_at")})
        who = ";".join(f"{x['email'] or 'user'}#{x['user']}@{x['created_at']}={x['said']}"
                       + (f"({x['strength']})" if x["strength"] else "")
                       + (f" reason={json.dumps(x['reason'], ensure_ascii=False)}" if x["reason"] else "") for x in people)
        project = led["project"]
        pair.lineage.append(f"label-studio:{self.client.url}/projects/{project}:task={rec.get('task')}:{state}:{who}")
        pair.meta = {**pair.meta, "human_annotations": {"source": "label-studio", "url": self.client.url,
                                                        "project": project, "batch": led["batch"], "task": rec.get("task"),
                                                        "run": self.run, "state": state, "annotations": people}}


def pending_summary(state_dir: str | Path) -> dict[str, Any]:
    """Per batch ledger: project, tasks and how many have annotations (for status output)."""
    out = {}
    for path in sorted(Path(state_dir).glob(f"*{LEDGER_EXT}")):
        led = _read_json(path, "the Label Studio ledger")
        tasks = led.get("tasks", {})
        summary = led.get("summary") or {}
        out[led.get("batch", path.name)] = {
            "project": led.get("project"), "url": led.get("url"), "tasks": len(tasks),
            "confirmed": summary.get("confirmed", 0), "relabelled": summary.get("relabelled", 0),
            "agreement": (summary.get("agreement") or {}).get("percent"),
            "with_annotations": sum(1 for t in tasks.values()
                                    if any(not a.get("cancelled") and not a.get("withdrawn_at")
                                           for a in t["annotations"].values())),
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


def make_annotator(arg: str, settings: Any = None, *, output: str | Path | None = None, run: str | None = None,
                   **context: Any) -> LabelStudioAnnotator:
    """The `labelstudio` annotator of `curation.builders.ANNOTATORS`: the server from
    LABEL_STUDIO_URL (never from settings), the token from LABEL_STUDIO_API_KEY; the ledger beside `output`; `run`: the
    run id the curation state was labelled in (its seed), kept for every later project."""
    opts = _OPTIONS.get()
    env = dict(os.environ)
    if arg:
        env[ENV_URL] = arg
    client = LabelStudioClient.from_env(env)
    from rewardops.curation.settings import PROFILES

    s = settings if settings is not None else PROFILES["default"]
    return LabelStudioAnnotator(client, ledger_dir(output), wait_s=float(opts.get("wait_s", WAIT_S)),
                                poll_s=float(opts.get("poll_s", POLL_S)), resume=bool(opts.get("resume", False)),
                                seed=s.seed, log=opts.get("log"), run=run, annotators_per_pair=s.annotators_per_pair,
                                skip_limit=s.labelstudio_skip_limit, annotators=s.labelstudio_annotators,
                                graded=s.labelstudio_graded)


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
        raise LabelStudioError(f"the Label Studio steps need settings annotator 'labelstudio', got "
                               f"{getattr(settings, 'annotator', None)!r}; set it in the pipeline's settings")


def open_iteration(state: str | Path, ledger: str | Path, iteration: int, settings: Any,
                   pool: str | Path | None = None) -> dict[str, Any]:
    """Step 1: run stage-1 iteration `iteration` on `state` up to its human batch, which is opened
    as a Label Studio project; the run's ledger goes to `ledger` (this step's output). Nothing of
    the iteration itself is kept: the collect step repeats it with the same inputs. `pool`: the
    seed state holding the pool (on a cluster the KFP artifact; default: the one `state` names)."""
    import tempfile

    from rewardops.curation.steps import stage1_iteration

    _require_labelstudio(settings)
    ledger = Path(ledger)
    ledger.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="labelstudio-open-") as tmp, options(ledger=ledger, wait_s=0.0, resume=False):
        try:
            stage1_iteration(state, Path(tmp) / "state", iteration, settings, pool=pool)
        except AnnotationsPending as exc:
            info = {"batch": exc.batch, "project": exc.project, "url": exc.url, "decided": exc.done,
                    "tasks": exc.total, "complete": False}
        else:  # every pair was already decided by people (e.g. a rerun after they finished)
            info = {"complete": True}
    info["ledgers"] = pending_summary(ledger)
    _write_json_atomic(ledger / "opened.json", {**info, "iteration": iteration})
    return info


def collect_iteration(state: str | Path, opened: str | Path, out: str | Path, iteration: int, settings: Any,
                      wait_s: float = WAIT_S, poll_s: float = POLL_S, pool: str | Path | None = None) -> dict[str, Any]:
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
            metrics = stage1_iteration(state, out, iteration, settings, pool=pool)
        summary = pending_summary(ledger)
    agreements = [v["agreement"] for v in summary.values() if v["agreement"] is not None]
    return {**metrics, "labelstudio_tasks": float(sum(v["tasks"] for v in summary.values())),
            "labelstudio_with_annotations": float(sum(v["with_annotations"] for v in summary.values())),
            "labelstudio_confirmed": float(sum(v["confirmed"] for v in summary.values())),
            "labelstudio_relabelled": float(sum(v["relabelled"] for v in summary.values())),
            **({"labelstudio_agreement": min(agreements)} if agreements else {})}
