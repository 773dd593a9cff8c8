"""Join tokens, platform API keys and role permissions. Knows nothing of HTTP or Socket.IO."""
