"""The write side: planning which files go into which containers (`plan`), in each
upstream's daily layout, and staging them so a run writes everything or nothing (`staging`).

It imports format (the writers), namespace and settings; the read side never imports it.
"""
