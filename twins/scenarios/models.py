"""A planner's scenario, its runs, and the chunks a run is split into for the Celery workers."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from twins.models import Asset, Site


class Scenario(models.Model):
    """What the planner asked: which assets, and what changes (form fields, engine names)."""

    name = models.CharField(max_length=200)
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="scenarios")
    assets = models.ManyToManyField(Asset, related_name="scenarios")
    params = models.JSONField(default=dict, help_text="The planner's changes: factors, policy, crews, spares, horizon, replications, seed.")
    compare_baseline = models.BooleanField(default=True, help_text="Also simulate the baseline (the twins as they are now, run to failure).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class ScenarioRun(models.Model):
    """One simulation of a scenario, calibrated from the twins at the moment it was started."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (State.QUEUED, State.RUNNING)

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="runs")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, help_text="Calibration time: day 0 of the simulation.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    chunks_per_variant = models.PositiveIntegerField(default=1)
    total = models.PositiveIntegerField(default=0, help_text="Replications over all variants.")
    check_total = models.PositiveIntegerField(default=0, help_text="Replications of the recommendation check over all variants.")
    specs = models.JSONField(default=dict, help_text="Engine scenarios (scenario_to_dict) by variant.")
    calibration = models.JSONField(default=list, blank=True, help_text="How each asset was calibrated from its twin.")
    results = models.JSONField(null=True, blank=True, help_text="ScenarioResult by variant.")
    comparison = models.JSONField(null=True, blank=True, help_text="compare(baseline, [scenario]).")
    check_plans = models.JSONField(null=True, blank=True, help_text="What the recommendation check simulates (twins.sim.check_plan) by variant, once the simulation's chunks are in.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "-created_at"])]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.scenario}"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE


class ScenarioChunk(models.Model):
    """A piece of a run's work for one variant. First the simulation: replications
    start..stop-1 (`data` the engine's ChunkResult). Once all of them are in, side by side: the
    check of the recommendations, replications start..stop-1 of it (`data` a CheckChunk), and
    the merge of the simulation's chunks but that check (one row, 0..replications, `data` an
    UncheckedResult). `data` is cleared once the run's results are stored: the merged result
    is what stays."""

    class Phase(models.TextChoices):
        SIMULATE = "simulate"
        CHECK = "check"
        MERGE = "merge"

    run = models.ForeignKey(ScenarioRun, on_delete=models.CASCADE, related_name="chunks")
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.SIMULATE)
    variant = models.CharField(max_length=16)
    index = models.PositiveIntegerField()
    start = models.PositiveIntegerField()
    stop = models.PositiveIntegerField()
    done = models.PositiveIntegerField(default=0)
    data = models.JSONField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "phase", "variant", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "phase", "variant", "index"], name="scenario_chunk_unique_per_run_phase"),
            models.CheckConstraint(condition=models.Q(start__lt=models.F("stop")), name="scenario_chunk_start_before_stop"),
        ]

    def __str__(self) -> str:
        return f"{self.variant} {self.phase} {self.start}..{self.stop} of run {self.run_id}"
