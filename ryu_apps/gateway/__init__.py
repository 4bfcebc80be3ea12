"""Pure gateway logic: no Ryu, no eventlet, no sockets."""
