"""Lambda entry points: thin Powertools wiring around the plain modules."""
