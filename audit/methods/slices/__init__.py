"""Slice discovery: additive counts of every conjunction of up to three low-cardinality features (`SliceLattice`),
each slice's error rate, false positive and false negative rates, selection rate and calibration gap tested against
its complement with false discovery control across every test (`discover`), and the smallest gap the data could
detect (`detectable_gap`)."""

from audit.methods.slices.discovery import Discovery, discover
from audit.methods.slices.lattice import SliceLattice
from audit.methods.slices.outcomes import Outcomes
from audit.methods.slices.power import detectable_gap

__all__ = ["Discovery", "Outcomes", "SliceLattice", "detectable_gap", "discover"]
