"""Weak supervision: labelling functions, Snorkel's label model, and the figures that judge them.

PyPI's Linux torch wheel (which snorkel's LabelModel runs on) installs triton, the GPU kernel
compiler, and torch imports it when an optimizer is created. triton and TensorFlow both bundle
LLVM, and loading the second one into a process aborts it ("inconsistency in registered
CommandLine options"). ssp runs torch on the CPU only, where triton is never used, so importing
it is switched off here: torch then sees "no triton" and carries on.
"""

import sys

sys.modules.setdefault("triton", None)
