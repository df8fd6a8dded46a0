"""Building blocks of the validated configuration (profiles and transport targets)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict

from chaos.units import parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]


class Model(BaseModel):
    """A profile section: unknown fields are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
