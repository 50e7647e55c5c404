"""The training loop's hooks: everything around ``Trainer``'s loop (engine/trainer.py) that is
not a training step. Shaped like detectron2's ``HookBase`` (``detectron2/engine/hooks.py``).

A hook sees the trainer as ``self.trainer`` and is called, in the order of the trainer's list,

    before_train   once, after the run is set up (resumed or not)
    before_epoch   before each epoch's (or the resumed epoch's remaining) steps
    after_forward  after each step's loss, summed over processes, before the weights change
    after_step     after each optimizer step
    after_epoch    after each epoch, and after a partial one that max_steps stopped; the
                   epoch's row (``trainer.row``) fills up as it goes down the list
    after_train    once, when the run ends, also by an exception (in a ``finally``)

``state_dict()``/``load_state_dict()`` carry a hook's own state in the checkpoint (under its
``name``), so a resumed run continues it exactly. The engine's own hooks keep theirs where
earlier checkpoints had it (``RunState``, the averaged weights), so those still resume.
"""

from __future__ import annotations

import math
import time
from typing import Any, Optional, Sequence

from ..errors import UserError
from ..weights.io import save_weights
from .checkpoint import snapshot
from .distributed import unwrap
from .logging import Scalars, StepProgress, compile_cache_note, write_metrics
from .report import epoch_line

__all__ = ["HookBase", "TrainingDiverged", "EXIT_DIVERGED", "ProgressHook", "AveragingHook",
           "DivergenceHook", "EvaluationHook", "EpochRecord", "CheckpointHook",
           "MetricsCSVHook", "TensorBoardHook", "EpochLogHook", "default_hooks"]

EXIT_DIVERGED = 3  # the command line's exit status for a diverged run (2: bad arguments)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""

    exit_code = EXIT_DIVERGED


class HookBase:
    """A no-op hook; subclasses override the calls they need (see the module docstring)."""

    # The engine.trainer.Trainer that runs the hook, set by it (untyped here: the trainer
    # imports this module, and the layout test counts type-only imports as loops too).
    trainer: Any
    # Where the hook's state sat in checkpoints before hooks had their own entry: the names of
    # ``TrainCheckpoint`` fields that state_dict() fills (none: under ``hooks[name]``).
    checkpoint_fields: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The key of this hook's state in a checkpoint."""
        return type(self).__name__

    def before_train(self) -> None: ...

    def before_epoch(self) -> None: ...

    def after_forward(self) -> None: ...

    def after_step(self) -> None: ...

    def after_epoch(self) -> None: ...

    def after_train(self) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ProgressHook(HookBase):
    """The progress bar (a line every few steps off a terminal), and the first step's time when
    it compiled (--compile)."""

    def __init__(self) -> None:
        self.bar: Optional[StepProgress] = None

    def before_epoch(self) -> None:
        t = self.trainer
        cfg, st = t.cfg, t.state
        self.bar = StepProgress(enabled=t.info.is_main and cfg.run.progress, log=t.log,
                                epoch=st.epoch + 1, epochs=cfg.run.epochs, steps=t.steps_per_epoch,
                                done=st.epoch_step, images=st.sums.get(t.count_key, 0.0),
                                every=cfg.run.log_every or max(1, min(50, t.steps_per_epoch // 10)),
                                unit=t.count_unit)

    def after_step(self) -> None:
        t = self.trainer
        if t.compile_pending:
            t.compile_pending = False
            t.log(f"torch.compile: the first step took {t.step_seconds:.1f} s "
                  f"(compilation; {compile_cache_note()})")
        st = t.state
        self.bar.update(done=st.epoch_step, step=st.step, total_steps=t.total_steps,
                        loss=t.step_loss, images=st.sums.get(t.count_key, 0.0))

    def after_epoch(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    after_train = after_epoch  # stopped inside an epoch (an exception): the bar goes too


class AveragingHook(HookBase):
    """Polyak averaging (``average``: ema, tail mean; engine/optim.py) of the weights after each
    step from ``average_start_epoch`` on. Its state is the averaged weights and their count,
    kept in the checkpoint's ``averaged_model``/``averaged_n`` entries."""

    checkpoint_fields = ("averaged_model", "averaged_n")

    def before_train(self) -> None:
        t = self.trainer
        self.start = int(round(t.cfg.average.start_epoch * t.steps_per_epoch))

    def after_step(self) -> None:
        t = self.trainer
        if t.averaged is not None and t.state.step > self.start:
            t.averaged.update_parameters(unwrap(t.model))

    def state_dict(self) -> dict[str, Any]:
        a = self.trainer.averaged
        return {"averaged_model": a.module.state_dict() if a is not None and a.n_averaged > 0
                else None, "averaged_n": int(a.n_averaged) if a is not None else 0}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        a = self.trainer.averaged
        if a is not None and state.get("averaged_model") is not None:
            a.module.load_state_dict(state["averaged_model"])
            a.n_averaged.fill_(state["averaged_n"])


class DivergenceHook(HookBase):
    """Stops the run when the loss is NaN or infinite, before those gradients reach the weights,
    once the last checkpoint is complete on disk (``TrainingDiverged``: exit status 3)."""

    def after_forward(self) -> None:
        t = self.trainer
        total = t.step_values[t.loss_key]
        if not math.isfinite(total):
            t.writer.wait()  # the last good checkpoint is complete on disk before we stop
            raise TrainingDiverged(self.message(total / max(t.step_values[t.count_key], 1.0)))

    def message(self, value: float) -> str:
        t = self.trainer
        st = t.state
        last = (f"{t.run_dir.checkpoint_last} (step {st.last_checkpoint_step}) is intact"
                if st.last_checkpoint_step >= 0 else "no checkpoint was written yet"
                + (" (save_checkpoints none)" if t.cfg.run.save_checkpoints == "none" else ""))
        return (f"the training loss became {value} at step {st.step + 1} (epoch {st.epoch + 1}, "
                f"batch {st.epoch_step + 1}); stopped without updating the weights. The last good "
                f"checkpoint, {last}. Lower the learning rate (lr), add warmup "
                f"(warmup_epochs=1) or gradient clipping (clip_grad_norm=5), then resume the run "
                f"or start again")


class EvaluationHook(HookBase):
    """Evaluates every ``eval_every`` epochs and after the last (the averaged weights once there
    are any; the raw ones too after the last), into the row's ``val_*``; keeps the best epoch
    by the task's ``best_metric`` (in ``RunState``, where checkpoints have always kept it)."""

    def after_epoch(self) -> None:
        t = self.trainer
        cfg, st, row, task = t.cfg, t.state, t.row, t.task
        if (st.epoch + 1) % cfg.run.eval_every == 0 or t.last_epoch:
            val = task.evaluate(t.eval_model(), t.val_loader, t.device, cfg)
            row.update({f"val_{k}": v for k, v in val.items() if k not in ("images", t.count_key)})
            if t.averaged is not None and t.last_epoch:  # the raw weights, for comparison, once
                raw = task.evaluate(t.model, t.val_loader, t.device, cfg)
                row[f"{task.best_metric}_raw"] = raw[task.best_metric[len("val_"):]]
        t.is_best = task.best_metric in row and row[task.best_metric] > st.best_metric
        if t.is_best:
            st.best_metric, st.best_epoch = row[task.best_metric], st.epoch + 1


class EpochRecord(HookBase):
    """Closes the epoch's row (its seconds) and adds it to the history; a partial epoch (stopped
    by max_steps) goes to metrics.csv and curves.png but not into the history."""

    def after_epoch(self) -> None:
        t = self.trainer
        st, row = t.state, t.row
        row["epoch_seconds"] = time.perf_counter() - t.epoch_t0
        if t.stopped_early:
            row.update(partial=1, epoch_fraction=round(st.epoch_step / t.steps_per_epoch, 4))
        else:
            st.history.append(row)
            st.next_epoch()
        t.last_row = row


class CheckpointHook(HookBase):
    """checkpoint-last.pt every ``checkpoint_every`` steps and after each epoch, and what
    ``save_checkpoints`` keeps of the best epoch: its whole checkpoint (all) or its evaluated
    weights as model-best.safetensors (best). Written in the background (``CheckpointWriter``)."""

    def after_step(self) -> None:
        t = self.trainer
        st, every = t.state, t.cfg.run.checkpoint_every
        if (every and st.step % every == 0 and st.epoch_step < t.steps_per_epoch
                and not t.max_steps_reached()):
            t.tally_train_time()
            self.save()

    def after_epoch(self) -> None:
        self.save(best=self.trainer.is_best)

    def after_train(self) -> None:
        self.trainer.writer.wait()  # a checkpoint in flight reaches the disk, whatever happened

    def save(self, *, best: bool = False) -> None:
        t = self.trainer
        st, keep = t.state, t.cfg.run.save_checkpoints
        if keep == "none":
            return
        if t.info.is_main:
            weights = None
            if best and keep == "best":
                sd, extra = snapshot(t.eval_model().state_dict()), {"epoch": st.best_epoch}
                weights = lambda: save_weights(  # noqa: E731  (run in the writer's thread)
                    t.model, t.run_dir.best_weights, state_dict=sd, task=t.task.name,
                    class_names=t.meta.class_names, preprocess=t.preprocess, extra=extra)
            t.writer.submit(t.checkpoint(), best=best and keep == "all", weights=weights,
                            note=f"checkpoint: step {st.step} (epoch {st.epoch + 1}, batch "
                                 f"{st.epoch_step})" + (", best so far" if best else ""))
        st.last_checkpoint_step = st.step


class MetricsCSVHook(HookBase):
    """RUN/metrics.csv, rewritten after each epoch (rank 0)."""

    def after_epoch(self) -> None:
        t = self.trainer
        if t.info.is_main:
            write_metrics(t.run_dir.path, t.rows())


class TensorBoardHook(HookBase):
    """TensorBoard scalars (``tensorboard``, rank 0): the loss and lr every 10 steps, each
    epoch's row."""

    def __init__(self) -> None:
        self.scalars: Optional[Scalars] = None

    def before_train(self) -> None:
        t = self.trainer
        self.scalars = Scalars(t.cfg.run.tensorboard and t.info.is_main, t.run_dir.path,
                               t.state.step, t.log)

    def after_step(self) -> None:
        t = self.trainer
        if t.state.step % 10 == 0:
            self.scalars.step(t.state.step, t.step_loss, t.optimizer.param_groups[0]["lr"])

    def after_epoch(self) -> None:
        if self.trainer.info.is_main:
            self.scalars.epoch(self.trainer.row)

    def after_train(self) -> None:
        if self.scalars is not None:
            self.scalars.close()


class EpochLogHook(HookBase):
    """The epoch's line on the console and in train.log."""

    def after_epoch(self) -> None:
        t = self.trainer
        t.log(epoch_line(t.task, t.row, t.cfg.run.epochs))


def default_hooks(extra: Sequence[HookBase] = ()) -> list[HookBase]:
    """The engine's hooks and ``extra`` in the order they run: a row is evaluated, closed,
    written and logged; the checkpoint comes last, so that it holds every hook's state after
    the step or epoch (a resumed run continues each hook where it stood)."""
    return [ProgressHook(), AveragingHook(), DivergenceHook(), EvaluationHook(), EpochRecord(),
            MetricsCSVHook(), TensorBoardHook(), EpochLogHook(), *extra, CheckpointHook()]
