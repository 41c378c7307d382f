// The check executables of CMakeLists.txt's gta_layer link one layer's whole library against the
// layers below it; linking is the check, so they are never run.
int main() { return 0; }
