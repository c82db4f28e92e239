"""Editing models built by transfer: learned colour adjustment and style transfer."""
