"""Local stand-ins for running the pipeline on one machine: the moto-backed AWS stack (stack.py) and friends."""
