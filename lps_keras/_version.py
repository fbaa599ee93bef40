"""The package version, readable without importing the package face (`lps_keras/__init__`)."""

__version__ = "0.1.0"
