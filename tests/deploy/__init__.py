"""Deployment assets: rules, dashboard, units, manifests, docs."""
