package io.mlkv.bench;

import java.io.PrintStream;

/**
 * A progress line on standard error: redrawn in place on a terminal, one line per tenth of the
 * work otherwise (so logs stay readable).
 */
public final class Progress {
    private static final long REDRAW_NANOS = 200_000_000L;

    private final String label;
    private final long total;
    private final String unit;
    private final PrintStream out = System.err;
    private final boolean terminal = System.console() != null;
    private final long start = System.nanoTime();
    private long lastDraw;
    private int lastTenth = -1;

    public Progress(String label, long total, String unit) {
        this.label = label;
        this.total = Math.max(1, total);
        this.unit = unit;
    }

    public void update(long done) {
        long now = System.nanoTime();
        int tenth = (int) (10 * done / total);
        if (terminal ? now - lastDraw < REDRAW_NANOS && done < total : tenth == lastTenth) {
            return;
        }
        lastDraw = now;
        lastTenth = tenth;
        double secs = Math.max(1e-9, (now - start) / 1e9);
        int width = 30;
        int filled = (int) (width * done / total);
        String line = String.format("%-8s [%s%s] %3d%% %,d/%,d %s, %,.0f %s/s", label,
                "#".repeat(filled), ".".repeat(width - filled), 100 * done / total, done, total, unit,
                done / secs, unit);
        if (terminal) {
            out.print("\r" + line + (done >= total ? System.lineSeparator() : ""));
        } else {
            out.println(line);
        }
        out.flush();
    }
}
