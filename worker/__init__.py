"""Ray layer: runs a solve on a group of workers that exchange only seeds and scalars."""
