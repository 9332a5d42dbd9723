"""Checks of the demo lab used by the grading tests (set COURSE_CHECKS_PACKAGE=demo_checks)."""
