"""Reusable views: an image grid (mosaic) with labels, zoom, pan and clickable tiles."""
