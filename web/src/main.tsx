/**
 * The page's entry: reads the recording or comparison (load.ts) and shows it in #app, or says
 * why it cannot.
 */
import { render } from 'preact';
import { RecordingView } from './app.js';
import { CompareView } from './compare.js';
import { COMPARISON_FORMAT, loadData } from './load.js';

/** Loads the data and renders its view, or the reason there is none. */
async function main(): Promise<void> {
  const app = document.getElementById('app')!;
  render(<p class="loading">loading…</p>, app);
  try {
    const data = await loadData();
    render(data.format === COMPARISON_FORMAT ? <CompareView cmp={data} /> : <RecordingView rec={data} />, app);
  } catch (err) {
    render(
      <div class="failure" data-testid="error">
        <h1>isolab see cannot show this</h1>
        <p>{(err as Error).message}</p>
      </div>,
      app,
    );
  }
}

void main();
