"""Pure geometry functions (boxes, cameras, BEV grid, ego motion). Import from the modules."""
