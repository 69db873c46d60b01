"""The decision: what a model may answer, what Rez outputs, and the profile's rules between the two."""
