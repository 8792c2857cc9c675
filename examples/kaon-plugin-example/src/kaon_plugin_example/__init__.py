"""An example Kaon plugin: the ``csv_profile`` step type (see README.md)."""

from kaon_plugin_example.csv_profile import CsvProfileStepType, ProfileConfig

__all__ = ["CsvProfileStepType", "ProfileConfig"]
