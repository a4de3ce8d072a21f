import { afterEach, vi } from 'vitest';
import { cleanup } from '@testing-library/react';

// jsdom has no canvas and no ResizeObserver: uPlot is replaced by a recorder of what it was
// asked to draw (its drawing is checked in the browser, e2e/fixes.e2e.ts), and observers
// observe nothing.
export const drawnCharts: { opts: unknown; data: unknown; destroyed: boolean }[] = [];

vi.mock('uplot', () => ({
  default: class {
    record: { opts: unknown; data: unknown; destroyed: boolean };
    constructor(opts: unknown, data: unknown) {
      this.record = { opts, data, destroyed: false };
      drawnCharts.push(this.record);
    }
    setSize() {}
    destroy() {
      this.record.destroyed = true;
    }
  },
}));

if (!('ResizeObserver' in globalThis)) {
  globalThis.ResizeObserver = class {
    observe() {}
    unobserve() {}
    disconnect() {}
  } as unknown as typeof ResizeObserver;
}

afterEach(() => {
  cleanup();
  localStorage.clear();
  drawnCharts.length = 0;
});
