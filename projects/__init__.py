"""Project packages; each registers its modules into mmdet's registries on import."""
