fn main() -> std::process::ExitCode {
    de1d::main()
}
