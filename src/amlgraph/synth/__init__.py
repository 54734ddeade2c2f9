"""The IBM-format data generator (see docs/SYNTH.md).

Public surface: :func:`generate`, :data:`PRESETS`, :class:`Preset`, :class:`GenerateResult`.
"""
from amlgraph.synth._generate import CHUNK_ROWS, PRESETS, GenerateResult, Preset, generate
from amlgraph.synth._presets import resolve_preset

__all__ = ["CHUNK_ROWS", "PRESETS", "GenerateResult", "Preset", "generate", "resolve_preset"]
