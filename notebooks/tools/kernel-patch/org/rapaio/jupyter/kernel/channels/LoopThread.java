package org.rapaio.jupyter.kernel.channels;

/**
 * Replacement for rapaio-jupyter-kernel 3.0.1's channel loop thread, put before the kernel's jar on its class path
 * by {@code notebooks/install-kernel.sh}. Same constructor and methods; two start-up races removed:
 * <ul>
 *   <li>3.0.1 sets its {@code running} flag after {@code Thread.start()}, so a thread scheduled at once sees it false
 *       and ends silently. A kernel whose shell thread lost that race binds its sockets and never answers
 *       {@code kernel_info_request} (CI, 2026-12-04: "Kernel didn't respond in 90 seconds" three starts in a row).
 *       Here the flag is set before the thread starts.</li>
 *   <li>The shell thread polls before the kernel has registered its message handlers; a request arriving in between
 *       threw a NullPointerException that ended the thread. Here an exception from one loop pass is reported on
 *       stderr and the loop goes on; the client repeats {@code kernel_info_request} every second.</li>
 * </ul>
 */
public final class LoopThread extends Thread {

    private volatile boolean running;
    private final long sleepMillis;
    private final Runnable loopBody;

    public LoopThread(String name, long sleepMillis, Runnable loopBody) {
        super(name);
        this.sleepMillis = sleepMillis;
        this.loopBody = loopBody;
    }

    @Override
    public void run() {
        while (running) {
            try {
                loopBody.run();
            } catch (RuntimeException e) {
                if (!running) return;
                System.err.println("[" + getName() + "] loop pass failed, continuing: " + e);
            }
            try {
                Thread.sleep(sleepMillis);
            } catch (InterruptedException e) {
                running = false;
                return;
            }
        }
    }

    @Override
    public synchronized void start() {
        running = true;
        super.start();
    }

    public void shutdown() {
        running = false;
    }
}
