package io.mlkv.bench;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code java -jar mlkv-bench.jar <command>}: the MLKV command-line runner. {@code jmh ARGS}
 * hands every following argument to JMH, which runs the benchmarks packed in the jar.
 */
@Command(name = "mlkv-bench", mixinStandardHelpOptions = true, version = "mlkv-bench 0.1.0",
        description = "Runs MLKV's demo, workloads, policy simulator and benchmarks.",
        footer = {"%nAnd, outside picocli:",
            "  jmh [JMH options]  runs the JMH benchmarks packed in this jar,",
            "                       e.g. 'jmh TierBenchmark -f 1'"},
        subcommands = {RunCommand.class, DemoCommand.class, SimulateCommand.class, GpuBenchCommand.class, GpuIoCommand.class, StoreBenchCommand.class, ShardBenchCommand.class,
            BatchBenchCommand.class,
            CommandLine.HelpCommand.class})
public final class Main implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) throws Exception {
        if (args.length > 0 && args[0].equals("jmh")) {
            org.openjdk.jmh.Main.main(java.util.Arrays.copyOfRange(args, 1, args.length));
            return;
        }
        System.exit(io.mlkv.cli.Cli.execute(new Main(), args));
    }

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }
}
