"""Files every process on every host reads: model artifacts kept in the database."""

from __future__ import annotations

from django.db import models


class StoredFile(models.Model):
    """One file of a model artifact, under the name the database gives the artifact (its path,
    or ``<directory>/<file>``); web/file_store.py writes it beside the artifact's row and
    materializes it on a host that lacks it."""

    name = models.CharField(max_length=700, unique=True)
    data = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    stored_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name
