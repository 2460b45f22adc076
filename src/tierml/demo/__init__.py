"""`tierml demo`: the whole story on one machine — train, register, plan, run, adapt, report."""
