"""Local stand-ins for running the pipeline on one machine.

The moto-backed AWS stack built from template.yaml, the seedance-pipeline CLI and the operator tools.
"""
