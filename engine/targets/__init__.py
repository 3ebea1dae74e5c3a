"""Website targets and metric switches: the model, the targets file, the form, content regexes.

The public surface is below; engine.targets.metric_state keeps the metric switches.
"""

from engine.targets.file import load_targets, save_targets
from engine.targets.form import target_field_problems, target_from_form
from engine.targets.model import Target, target_from_dict, target_to_dict
from engine.targets.regex import compile_regex, regex_problem

__all__ = [
    "Target",
    "compile_regex",
    "load_targets",
    "regex_problem",
    "save_targets",
    "target_field_problems",
    "target_from_dict",
    "target_from_form",
    "target_to_dict",
]
