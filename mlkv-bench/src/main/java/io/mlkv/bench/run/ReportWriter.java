package io.mlkv.bench.run;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.dataformat.csv.CsvMapper;
import com.fasterxml.jackson.dataformat.csv.CsvSchema;
import io.mlkv.core.TierStats;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;

/** Writes a {@link RunResult} as a console summary, JSON, CSV and a PNG chart. */
public final class ReportWriter {
    private ReportWriter() {
    }

    /** The console summary: throughput, latency percentiles per operation, per-tier counters. */
    public static void printSummary(RunResult r, PrintStream out) {
        out.printf(Locale.ROOT, "%nworkload %s: %d threads, dim %d, %d keys per operation%n", r.workload(), r.threads(),
                r.dim(), r.batchSize());
        out.printf(Locale.ROOT, "load %.2f s; run %.2f s: %,.0f operations/s, %,.0f keys/s%n%n", r.loadSeconds(),
                r.runSeconds(), r.operationsPerSecond(), r.keysPerSecond());
        out.println("| operation | operations | keys | mean µs | p50 µs | p95 µs | p99 µs | p99.9 µs | max µs |");
        out.println("|---|---|---|---|---|---|---|---|---|");
        for (RunResult.OperationStats s : r.perOperation()) {
            out.printf(Locale.ROOT, "| %s | %,d | %,d | %.1f | %d | %d | %d | %d | %d |%n", s.operation(), s.count(),
                    s.keys(), s.meanMicros(), s.p50Micros(), s.p95Micros(), s.p99Micros(), s.p999Micros(), s.maxMicros());
        }
        out.println();
        out.println("| tier | hits | misses | hit rate | promotions | demotions | write-backs | lookup s | move s |");
        out.println("|---|---|---|---|---|---|---|---|---|");
        for (TierStats t : r.stats().tiers()) {
            out.printf(Locale.ROOT, "| %s | %,d | %,d | %s | %,d | %,d | %,d | %.2f | %.2f |%n", t.tier(), t.hits(),
                    t.misses(), TierStats.rate(t.hitRate()), t.promotions(), t.demotions(), t.writeBacks(),
                    t.lookupNanos() / 1e9, t.moveNanos() / 1e9);
        }
        if (r.verifiedKeys() >= 0) {
            out.printf(Locale.ROOT, "%nverify: %,d keys read back and compared with what was written: %s%n", r.verifiedKeys(),
                    r.integrityFailures() == 0 ? "all match" : String.format(Locale.ROOT,
                            "INTEGRITY FAILURES: %,d keys read back with wrong values", r.integrityFailures()));
        }
    }

    /** Writes {@code <prefix>.json}, {@code <prefix>-operations.csv}, {@code <prefix>-timeline.csv} and {@code <prefix>.png}. */
    public static List<Path> writeFiles(RunResult r, Path dir, String prefix) throws IOException {
        Files.createDirectories(dir);
        Path json = dir.resolve(prefix + ".json");
        new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(json.toFile(), r);

        CsvMapper csv = new CsvMapper();
        Path ops = dir.resolve(prefix + "-operations.csv");
        CsvSchema opSchema = CsvSchema.builder().addColumn("operation").addColumn("count").addColumn("keys")
                .addColumn("meanMicros").addColumn("p50Micros").addColumn("p95Micros").addColumn("p99Micros")
                .addColumn("p999Micros").addColumn("maxMicros").setUseHeader(true).build();
        csv.writer(opSchema).writeValues(ops.toFile()).writeAll(r.perOperation()).close();
        Path timeline = dir.resolve(prefix + "-timeline.csv");
        CsvSchema tlSchema = CsvSchema.builder().addColumn("second").addColumn("opsPerSecond").addColumn("keysPerSecond")
                .addColumn("dramHitRate").setUseHeader(true).build();
        csv.writer(tlSchema).writeValues(timeline.toFile()).writeAll(r.timeline()).close();

        Path png = dir.resolve(prefix + ".png");
        writeChart(r, png);
        return List.of(json, ops, timeline, png);
    }

    private static void writeChart(RunResult r, Path png) throws IOException {
        System.setProperty("java.awt.headless", "true");
        List<RunResult.TimelinePoint> points = r.timeline();
        int n = Math.max(1, points.size());
        double[] x = new double[n];
        double[] keys = new double[n];
        double[] hit = new double[n];
        for (int i = 0; i < points.size(); i++) {
            RunResult.TimelinePoint p = points.get(i);
            x[i] = p.second();
            keys[i] = p.keysPerSecond();
            hit[i] = Double.isNaN(p.dramHitRate()) ? 0 : p.dramHitRate();
        }
        XYChart chart = new XYChartBuilder().width(1000).height(500)
                .title("MLKV " + r.workload() + ": throughput and DRAM hit rate, per 1 s interval").xAxisTitle("seconds").build();
        XYSeries throughput = chart.addSeries("keys/s (per interval)", x, keys);
        throughput.setYAxisGroup(0);
        XYSeries hitRate = chart.addSeries("DRAM hit rate (per interval)", x, hit);
        hitRate.setYAxisGroup(1);
        chart.setYAxisGroupTitle(0, "keys/s");
        chart.setYAxisGroupTitle(1, "DRAM hit rate");
        var styler = chart.getStyler();
        styler.setYAxisGroupPosition(1, org.knowm.xchart.style.Styler.YAxisPosition.Right);
        // Plain numbers from zero: throughput axis in thousands separators, hit rate 0 to 1.
        styler.setXAxisDecimalPattern("#,##0.#");
        styler.putYAxisGroupDecimalPatternMap(0, "#,##0");
        styler.putYAxisGroupDecimalPatternMap(1, "0.00");
        styler.setYAxisMin(0, 0.0);
        styler.setYAxisMin(1, 0.0);
        styler.setYAxisMax(1, 1.0);
        String file = png.toString();
        BitmapEncoder.saveBitmap(chart, file.substring(0, file.length() - 4), BitmapEncoder.BitmapFormat.PNG);
    }
}
