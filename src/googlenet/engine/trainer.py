"""The training engine: ``fit(task, cfg)`` trains any ``Task`` (engine/task.py), on one process
or many (torchrun), resumably.

``Trainer`` is the loop: set up the system, the run directory, the data and the model, then for
each epoch the steps (forward, backward, optimizer, schedule), then the final model and its
evaluation. Everything else is a hook (engine/hooks.py, as detectron2's ``HookBase``): progress,
averaging, the divergence check, evaluation and "best", checkpoints, metrics.csv, TensorBoard
and the epoch's line; ``fit(..., hooks=[...])`` adds more.

Reproducibility and resume: every random draw is a function of the seed and a position
(engine/sampling.py), so a checkpoint only needs the weights, the optimizer, the scheduler, the
hooks' state (the averaged weights), the counters and the running sums of the epoch in progress;
a resumed run continues bit-exactly on CPU (the saved RNG states are restored too, for anything
else that draws). Checkpoints are written atomically in the background (engine/checkpoint.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
import torch.nn as nn

from ..errors import UserError
from ..models.graph import amp_autocast
from ..models.precision import describe_amp
from ..weights.io import atomic_write, save_weights
from ..weights.records import TrainCheckpoint, WeightsMeta
from . import distributed as dist_lib
from .distributed import unwrap  # re-exported: tasks and experiments unwrap models with it
from .checkpoint import CheckpointWriter
from .config import RunConfig, to_toml
from .hooks import EXIT_DIVERGED, HookBase, TrainingDiverged, default_hooks  # noqa: F401
from .logging import RunLog, hms, load_warning, plot_curves
from .optim import choose_final, make_averaged, make_optimizer, make_scheduler
from .prefetch import prefetched
from .report import count_of, final_line, plot_groups, throughput_key
from .rundir import (  # noqa: F401  (default_run_dir: re-exported)
    RunDir, RunLock, check_new_run, claim_run_dir, default_run_dir,
)
from .sampling import SeededDataset, SeededSampler, loader_workers, seed_rng, step_seed
from .state import RunState, rng_state, set_rng_state
from .task import Task, TaskData

__all__ = ["fit", "Trainer", "TrainingDiverged", "unwrap", "default_run_dir", "autocast"]


def autocast(amp: Optional[str], device: torch.device, *, detector: bool = False):
    """Mixed precision of the forward pass (``system.amp``: none, bf16, fp16, auto; a
    ``detector`` keeps fp32 where its precision rule says, googlenet.models.graph); the loss is
    scaled by the trainer's ``torch.amp.GradScaler`` under fp16 only (bf16 has fp32's range)."""
    if amp is not None and amp != "none":
        return amp_autocast(amp, device, detector=detector)
    return contextlib.nullcontext()


def fit(task: Task, cfg: RunConfig, *, resume: Optional[TrainCheckpoint] = None,
        resume_dir: Optional[Path] = None, hooks: Sequence[HookBase] = ()) -> dict[str, Any]:
    """Train ``task`` with ``cfg`` (or continue the checkpoint ``resume`` of ``resume_dir``);
    ``hooks`` run after the engine's own, before the checkpoint. Returns the final results (also RUN/results.json)."""
    t0 = time.perf_counter()
    info = dist_lib.from_env()
    device = dist_lib.resolve_device(cfg.system.device, info)
    dist_lib.init(info, device)
    try:
        return Trainer(task, cfg, info, device, t0, resume, resume_dir, hooks).run()
    finally:
        dist_lib.shutdown()


class Trainer:
    """One run of ``fit``: set up (system, run directory, data, model), loop, finish. Hooks
    read (and some write) its attributes: ``state``, ``row``, ``model``, ``averaged``, ..."""

    def __init__(self, task: Task, cfg: RunConfig, info: dist_lib.DistInfo,
                 device: torch.device, t0: float, resume: Optional[TrainCheckpoint],
                 resume_dir: Optional[Path], hooks: Sequence[HookBase] = ()) -> None:
        self.task, self.cfg, self.info, self.device, self.t0 = task, cfg, info, device, t0
        self.resume, self.resume_dir = resume, resume_dir
        self.count_key, self.count_unit = count_of(task)
        self.log = RunLog(info.is_main)
        self.state = RunState()
        self.averaged = None
        self.init: Any = None  # what Task.load_init returned
        self.compile_pending = False  # --compile: the first step (compilation) is to be reported
        self.lock: Optional[RunLock] = None  # rank 0's lock on the run directory
        self.writer: Optional[CheckpointWriter] = None
        self.row: dict[str, Any] = {}  # the epoch's row, filled by the hooks' after_epoch
        self.last_row: dict[str, Any] = {}  # the last epoch's row (partial: stopped at max_steps)
        self.is_best = self.stopped_early = self.last_epoch = False  # of the epoch that ended
        self.step_values: dict[str, float] = {}  # the step's sums over processes
        self.step_loss = self.step_seconds = 0.0  # the step's mean loss, its time
        self.loss_key = "loss"
        self.hooks: list[HookBase] = default_hooks(hooks)
        for h in self.hooks:
            h.trainer = self

    # -- setup ------------------------------------------------------------------------------

    def _setup_system(self) -> None:
        cfg, info = self.cfg, self.info
        if cfg.system.threads:
            torch.set_num_threads(cfg.system.threads)
        elif info.enabled and self.device.type == "cpu":
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // info.local_world_size))
        if cfg.system.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.benchmark = False

    def _setup_data(self) -> TaskData:
        cfg, info = self.cfg, self.info
        if info.enabled and not info.is_main:
            dist_lib.barrier()  # rank 0 downloads (CIFAR) first
        data = self.task.setup_data(cfg, info)
        if info.enabled and info.is_main:
            dist_lib.barrier()
        if data.skipped:
            self.log(f"skipped {len(data.skipped)} unreadable file(s) (listed in "
                     f"{self.run_dir.train_log}; --strict stops at the first instead)")
            for _, why in data.skipped:
                self.log(f"  skipped: {why}", console=False)
        # A checkpoint or init weights for other classes or another network: refuse now.
        if self.resume is not None:
            self.task.check_compatible(self.resume.meta, cfg, data, str(self.resume_dir),
                                       "the checkpoint to resume")
            if hasattr(self.task, "adopt"):  # what the checkpoint fixes outside its tensors
                self.task.adopt(self.resume.meta, data)
        elif cfg.run.init:
            self.init = self.task.load_init(cfg, data)
        per_step = cfg.run.batch_size * info.world_size
        if len(data.train) < per_step:
            raise UserError(f"the training set has {len(data.train)} images, fewer than one "
                            f"step's batch ({cfg.run.batch_size} x {info.world_size} process(es)); "
                            f"lower the batch size")
        self.log(data.description)
        return data

    def _setup_loaders(self, data: TaskData) -> None:
        cfg, info, device = self.cfg, self.info, self.device
        base = torch.utils.data.DistributedSampler(
            data.train, num_replicas=info.world_size, rank=info.rank, shuffle=True,
            seed=cfg.system.seed, drop_last=True)
        self.sampler = SeededSampler(base, cfg.system.seed)
        self.workers = loader_workers(cfg.system.workers, data.in_memory)
        kw: dict[str, Any] = dict(num_workers=self.workers, pin_memory=device.type == "cuda",
                                  persistent_workers=self.workers > 0,
                                  collate_fn=data.train_collate or data.collate)
        if self.workers > 0:
            kw["prefetch_factor"] = 4
        self.train_loader = torch.utils.data.DataLoader(
            SeededDataset(data.train), batch_size=cfg.run.batch_size, sampler=self.sampler,
            drop_last=True, generator=torch.Generator().manual_seed(cfg.system.seed), **kw)
        self.steps_per_epoch = len(base) // cfg.run.batch_size
        self.total_steps = cfg.run.epochs * self.steps_per_epoch  # of the run
        if cfg.run.max_steps:
            self.total_steps = min(self.total_steps, cfg.run.max_steps)
        self.val_loader = self.eval_loader(data.val, data)

    def eval_loader(self, ds: torch.utils.data.Dataset, data: TaskData) -> torch.utils.data.DataLoader:
        idx = list(range(self.info.rank, len(ds), self.info.world_size))  # each item once over ranks
        return torch.utils.data.DataLoader(
            torch.utils.data.Subset(ds, idx), batch_size=max(2 * self.cfg.run.batch_size, 64),
            num_workers=loader_workers(self.cfg.system.workers, data.in_memory), collate_fn=data.collate,
            pin_memory=self.device.type == "cuda")

    def _setup_model(self, data: TaskData) -> None:
        cfg = self.cfg
        torch.manual_seed(cfg.system.seed)  # same initial weights on every rank (DDP also broadcasts them)
        model = self.task.build_model(cfg, data)
        if self.init is not None:
            self.log(self.task.apply_init(model, self.init, cfg))
            self.init = None  # no second reference to the init weights
        model.to(self.device)
        if cfg.system.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.averaged = make_averaged(model, cfg.average)
        self.optimizer = make_optimizer(model, cfg.optim)
        self.scheduler = make_scheduler(self.optimizer, cfg.optim, cfg.run.epochs, self.steps_per_epoch)
        # fp16 gradients underflow without loss scaling; the scaler skips a step whose gradients
        # overflowed and adapts its scale (a no-op object when amp is not fp16).
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.system.amp == "fp16")
        if self.resume is not None:
            self._restore(self.resume)
        self.train_model: nn.Module = model
        if self.info.enabled:
            self.train_model = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if cfg.system.compile:
            # The compiler's cache lives with the run unless the user chose one: a resumed run
            # (or a rerun of the same settings) loads the compiled graphs instead of compiling.
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(self.run_dir.compile_cache))
            self.train_model = torch.compile(self.train_model)
            self.compile_pending = True

    def _restore(self, ckpt: TrainCheckpoint) -> None:
        self.model.load_state_dict(ckpt.model)
        self.optimizer.load_state_dict(ckpt.optimizer)
        self.scheduler.load_state_dict(ckpt.scheduler)
        if ckpt.scaler and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt.scaler)
        for h in self.hooks:  # the averaged weights among them (AveragingHook)
            fields = h.checkpoint_fields
            h.load_state_dict({k: getattr(ckpt, k) for k in fields} if fields
                              else ckpt.hooks.get(h.name, {}))
        self.state = RunState.from_dict(ckpt.run_state)
        if ckpt.rng is not None:
            set_rng_state(ckpt.rng)
        self.log(f"resumed from {self.run_dir.checkpoint_last}: epoch {self.state.epoch + 1}, "
                 f"step {self.state.step}")

    def eval_model(self) -> nn.Module:
        """The Polyak-averaged weights once there are any (§6), else the raw ones."""
        a = self.averaged
        return a.module if a is not None and a.n_averaged > 0 else self.model

    # -- checkpoints ------------------------------------------------------------------------

    def checkpoint(self) -> TrainCheckpoint:
        """The run as it stands, with every hook's state (AveragingHook's in its own fields)."""
        own, states = {}, {}
        for h in self.hooks:
            sd = h.state_dict()
            if h.checkpoint_fields:
                own.update(sd)
            elif sd:
                states[h.name] = sd
        return TrainCheckpoint(
            meta=self.meta, model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
            run_state=self.state.to_dict(), config=self.cfg_dict, rng=rng_state(),
            world_size=self.info.world_size,
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
            hooks=states, **own)

    # -- the run ----------------------------------------------------------------------------

    def _lock_run_dir(self) -> None:
        if self.info.is_main and self.lock is None:
            self.lock = claim_run_dir(self.run_dir.path, self.resume is not None, self.log)

    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        finally:
            if self.lock is not None:
                self.lock.release()

    def _run(self) -> dict[str, Any]:
        cfg, info = self.cfg, self.info
        self._setup_system()
        self.run_dir = RunDir(self.resume_dir if self.resume_dir is not None else (
            cfg.run.out if cfg.run.out else default_run_dir(cfg.label())))
        if self.run_dir.path.is_dir():  # another process in it: refused now, before the data is read
            self._lock_run_dir()
        check_new_run(self.run_dir.path, self.resume is not None)
        self.log(f"run directory: {self.run_dir}")
        data = self._setup_data()
        if info.is_main:  # the data is usable: only now does the run directory appear
            self.run_dir.path.mkdir(parents=True, exist_ok=True)
            self._lock_run_dir()
            self.log.open(self.run_dir.train_log)
        self._setup_loaders(data)
        self._setup_model(data)
        self.cfg_dict = cfg.to_dict()
        self.meta = WeightsMeta(model_config=dict(self.model.config),
                                class_names=data.meta.class_names,
                                preprocess=data.meta.preprocess, task=self.task.name)
        self.preprocess = data.meta.preprocess_obj(str(self.run_dir))
        self.writer = CheckpointWriter(self.run_dir.path, self.log)
        try:
            if info.is_main and self.resume is None:
                atomic_write(self.run_dir.config,
                             lambda tmp: Path(tmp).write_text(to_toml(self.cfg_dict)))
            self._call("before_train")
            self._log_start()
            self._loop()
            return self._finish(data)
        finally:
            try:
                self._call("after_train")  # the checkpoint in flight reaches the disk
            finally:
                self.log.close()

    def _call(self, event: str) -> None:
        for h in self.hooks:
            getattr(h, event)()

    def _log_start(self) -> None:
        cfg, info = self.cfg, self.info
        n_params = sum(p.numel() for p in self.model.parameters())
        self.log(f"model: {' '.join(filter(None, (self.model.__class__.__name__, cfg.summary())))} "
                 f"({n_params / 1e6:.2f}M parameters), {cfg.run.epochs} epochs x "
                 f"{self.steps_per_epoch} steps, batch {cfg.run.batch_size}"
                 + (f" x {info.world_size} processes" if info.enabled else "")
                 + f", {cfg.optim.optimizer} lr {cfg.optim.lr}, averaging {cfg.average.mode}, device {self.device}"
                 + (f", {self.workers} loader workers" if self.workers else ""))
        line = describe_amp(cfg.system.amp, self.device,
                            detector=getattr(self.task, "detector", False))
        if line:
            self.log(f"mixed precision: {line}")
        if busy := load_warning("now", "other processes share them, so this run will take "
                                       "longer than on a quiet machine"):
            self.log(busy)

    def max_steps_reached(self) -> bool:
        return bool(self.cfg.run.max_steps and self.state.step >= self.cfg.run.max_steps)

    def _loop(self) -> None:
        cfg, st = self.cfg, self.state
        while st.epoch < cfg.run.epochs:
            if self.max_steps_reached():
                self.log(f"already at max_steps={cfg.run.max_steps}: nothing left to train")
                return
            self.sampler.set_epoch(st.epoch, skip=st.epoch_step * cfg.run.batch_size)
            self.epoch_t0 = time.perf_counter()
            self._call("before_epoch")
            stats = self.train_one_epoch()
            self.stopped_early = self.max_steps_reached() and st.epoch_step < self.steps_per_epoch
            self.last_epoch = st.epoch + 1 == cfg.run.epochs or self.stopped_early
            self.row, self.is_best = {"epoch": st.epoch + 1, "step": st.step, **stats}, False
            self._call("after_epoch")
            if self.stopped_early:
                self.log(f"stopped at max_steps={cfg.run.max_steps}")
                return

    def rows(self) -> list[dict[str, Any]]:
        """The epochs' rows, and the partial epoch's where max_steps stopped one."""
        return self.state.history + ([self.last_row] if self.last_row.get("partial") else [])

    def tally_train_time(self) -> None:
        """Adds the training time since the last tally to ``state.train_seconds``."""
        now = time.perf_counter()
        self.state.train_seconds += now - self.t_tally
        self.t_tally = now

    def train_one_epoch(self) -> dict[str, float]:
        """Train until the end of ``state.epoch`` (from ``state.epoch_step``); its metrics."""
        st = self.state
        self.train_model.train()
        self.t_tally = time.perf_counter()
        prepare = getattr(self.task, "prepare_batch", None)  # optional: batch -> device, ahead
        for batch in prefetched(self.train_loader, prepare, self.device):
            t_step = time.perf_counter()
            self._step(batch)
            self.step_seconds = time.perf_counter() - t_step
            self._call("after_step")
            if self.max_steps_reached():
                break
        self.tally_train_time()
        out = self.task.epoch_metrics(dict(st.sums), unwrap(self.model))
        out[throughput_key(self.task)] = st.sums.get(self.count_key, 0.0) / max(st.train_seconds, 1e-9)
        out["lr"] = self.optimizer.param_groups[0]["lr"]
        return out

    def _step(self, batch: Any) -> None:
        """One optimizer step on ``batch``; ``step_loss``: its mean loss (over all ranks)."""
        cfg, st, device = self.cfg, self.state, self.device
        # Dropout's randomness at this step depends on (seed, rank, step) only: exact resume.
        seed_rng(step_seed(cfg.system.seed, self.info.rank, st.step), device)
        res = self.task.train_step(self.train_model, batch, cfg, device)
        keys = list(res.sums)
        with torch.no_grad():  # one all-reduce per step for every logged sum
            red = torch.stack([res.sums[k].detach().float() for k in keys])
            dist_lib.all_reduce_sum(red)
            vals = dict(zip(keys, red.cpu().tolist()))
        self.step_values, self.loss_key = vals, res.loss_key
        self._call("after_forward")  # DivergenceHook: a NaN/inf loss stops here
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(res.loss).backward()
        if cfg.optim.clip_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(self.train_model.parameters(), cfg.optim.clip_grad_norm)
        self.scaler.step(self.optimizer)  # skipped (and the scale lowered) on inf/NaN gradients
        self.scaler.update()
        with warnings.catch_warnings():  # a step the scaler skipped is not a mis-ordered call
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            self.scheduler.step()
        st.step += 1
        st.epoch_step += 1
        for k, v in vals.items():
            st.sums[k] = st.sums.get(k, 0.0) + v
        st.sums["batches"] = st.sums.get("batches", 0.0) + 1
        self.step_loss = vals[res.loss_key] / max(vals[self.count_key], 1.0)

    # -- the end ----------------------------------------------------------------------------

    def _final(self) -> tuple[nn.Module, dict[str, Any]]:
        """The final model and why (``optim.choose_final``), by the last epoch's row."""
        key, row = self.task.best_metric, self.last_row

        def scores() -> tuple[float, float]:
            if key in row and f"{key}_raw" in row:
                return row[key], row[f"{key}_raw"]
            return tuple(self.task.evaluate(m, self.val_loader, self.device, self.cfg)[key[4:]]
                         for m in (self.averaged.module, self.model))  # resumed past the end

        return choose_final(self.averaged, self.model, key, scores, self.cfg.average.final_weights)

    def _finish(self, data: TaskData) -> dict[str, Any]:
        cfg, info, st, run_dir = self.cfg, self.info, self.state, self.run_dir
        # epochs as trained: a partial one (stopped at max_steps) as its fraction
        epochs = st.epoch + self.last_row["epoch_fraction"] if self.last_row.get("partial") else st.epoch
        results: dict[str, Any] = {"run_dir": str(run_dir), "epochs": epochs, "steps": st.step,
                                   f"best_{self.task.best_metric}": st.best_metric,
                                   "best_epoch": st.best_epoch}
        if self.last_row.get("partial"):
            results["partial_epoch"] = {"epoch": st.epoch + 1, "steps": st.epoch_step,
                                        "of": self.steps_per_epoch, "stopped_by": "max_steps"}
        final, choice = self._final()
        averaged = choice["chosen"] == "averaged"
        self.log(f"final model: the {choice['chosen']} weights ({choice['why']})")
        if info.is_main:
            save_weights(self.model, run_dir.final_weights, state_dict=final.state_dict(),
                         class_names=self.meta.class_names, task=self.task.name,
                         preprocess=self.preprocess,
                         extra={"epochs": epochs, "steps": st.step, "averaged": averaged,
                                "final_weights": choice, "config": self.cfg_dict})
        split = data.eval_split
        loader = self.val_loader if data.test is None else self.eval_loader(data.test, data)
        res = self.task.evaluate(final, loader, self.device, cfg)
        results.update({f"{split}_{k}": v for k, v in res.items()})
        results.update({"eval_split": split, "wall_seconds": time.perf_counter() - self.t0,
                        "final_weights": str(run_dir.final_weights), "averaged": averaged,
                        "final_weights_choice": choice})
        if info.is_main:
            atomic_write(run_dir.results,
                         lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2) + "\n"))
            if cfg.run.plots and self.rows():
                plot_curves(self.rows(), run_dir.curves, plot_groups(self.task),
                            title=", ".join(filter(None, (f"{run_dir.path.name}: {self.task.name}",
                                                          cfg.title(), f"{st.step} steps"))))
        self.log(final_line(self.task, split, res, averaged)
                 + f"  [{hms(results['wall_seconds'])} wall]")
        self.log(f"run directory: {run_dir}  (final model: {run_dir.final_weights}; "
                 f"`googlenet eval {run_dir}` to evaluate)")
        return results
