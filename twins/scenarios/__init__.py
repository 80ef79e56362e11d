"""What-if scenarios for maintenance planners: the Django side of the SimPy engine (twins.sim).

A planner's Scenario is calibrated from the live twins into engine scenarios (calibration.py),
run as a Celery chord of chunk tasks (services.py, tasks.py, jobs.py), with progress pushed to
the run's WebSocket group (progress.py, consumers.py), and shown as Plotly charts
(presenters.py, views.py).
"""
